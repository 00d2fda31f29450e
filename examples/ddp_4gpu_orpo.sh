#!/usr/bin/env bash
# ORPO with LoRA, DDP over 4 GPUs (one full model copy per GPU). Memory per GPU for a 7-8B model in bf16:
# ~17 GB weights + activations: 24 GB cards with gradient checkpointing, 40/80 GB cards comfortably.
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= NPROC_PER_NODE=2 bash examples/ddp_4gpu_orpo.sh
nproc_per_node=${NPROC_PER_NODE:-4}
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0,1,2,3}" \
NPROC_PER_NODE=$nproc_per_node \
prefswift orpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-llama3-8b-instruct}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-orpo-dpo-mix-40k}" \
    --lora_target_modules ALL --lora_rank 16 --lora_alpha 32 \
    --beta 0.1 --max_length 2048 --max_prompt_length 1024 \
    --batch_size 2 --gradient_accumulation_steps $(expr 16 / $nproc_per_node) \
    --learning_rate 8e-6 --num_train_epochs 1 --gradient_checkpointing true \
    --output_dir output/llama3-8b-orpo ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
