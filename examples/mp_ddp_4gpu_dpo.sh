#!/usr/bin/env bash
# Seed 004's shape: 4 GPUs, 2 DDP replicas, each model spread over 2 GPUs with device_map (MP + DDP).
# Memory: 4 x ~20 GB for yi-6b-chat in bf16 with LoRA; the reference is the adapter-disabled base (no second copy),
# so --ref_model_type equal to --model_type costs nothing extra.
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= NPROC_PER_NODE=2 bash examples/mp_ddp_4gpu_dpo.sh
nproc_per_node=${NPROC_PER_NODE:-2}
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0,1,2,3}" \
NPROC_PER_NODE=$nproc_per_node \
MASTER_PORT="${MASTER_PORT:-29500}" \
prefswift dpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-yi-6b-chat}" \
    --ref_model_type "${PREFSWIFT_EXAMPLE_MODEL:-yi-6b-chat}" \
    --model_revision master \
    --sft_type lora \
    --tuner_backend swift \
    --dtype AUTO \
    --output_dir output \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-hh-rlhf-cn:harmless_base_cn}" \
    --num_train_epochs 3 \
    --max_length 1024 \
    --max_prompt_length 512 \
    --check_dataset_strategy none \
    --lora_rank 8 \
    --lora_alpha 32 \
    --lora_dropout_p 0.05 \
    --lora_target_modules ALL \
    --gradient_checkpointing true \
    --batch_size 1 \
    --weight_decay 0.1 \
    --learning_rate 5e-5 \
    --gradient_accumulation_steps $(expr 16 / $nproc_per_node) \
    --max_grad_norm 1.0 \
    --warmup_ratio 0.03 \
    --eval_steps 2000 \
    --save_steps 2000 \
    --save_total_limit 2 \
    --logging_steps 10 ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
