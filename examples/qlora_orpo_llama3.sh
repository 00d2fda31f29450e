#!/usr/bin/env bash
# Seed 002's recipe: ORPO on Llama 3 8B with QLoRA (nf4, double quant) on one GPU: ~6 GB 4-bit weights +
# activations; fits a 16-24 GB card. Needs bitsandbytes (pip install -r requirements/gpu.txt).
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= bash examples/qlora_orpo_llama3.sh
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0}" \
prefswift orpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-llama3-8b}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-orpo-dpo-mix-40k#1000}" \
    --use_4bit True --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true \
    --lora_r 16 --lora_alpha 32 --lora_dropout 0.05 --lora_target_modules ALL \
    --learning_rate 8e-6 --beta 0.1 --lr_scheduler_type linear --max_length 1024 --max_prompt_length 512 \
    --per_device_train_batch_size 2 --gradient_accumulation_steps 4 --optim paged_adamw_8bit \
    --num_train_epochs 1 --eval_steps 200 --logging_steps 10 --warmup_steps 10 \
    --output_dir output/llama3-8b-orpo-qlora ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
