#!/usr/bin/env bash
# DPO with LoRA on one GPU. Memory for a 7-8B model in bf16: ~17 GB weights + activations; with
# --gradient_checkpointing true and max_length 1024 it fits a 24 GB card. The reference is the base model with the
# adapter disabled (no second copy). Add --quantization_bit 4 (QLoRA) for ~8 GB weights.
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= bash examples/single_gpu_lora_dpo.sh
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0}" \
prefswift dpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-qwen2.5-7b-instruct}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-hh-rlhf-cn:harmless_base_cn}" \
    --sft_type lora --lora_rank 8 --lora_alpha 32 --lora_target_modules ALL \
    --dtype AUTO --max_length 1024 --max_prompt_length 512 \
    --batch_size 1 --gradient_accumulation_steps 16 --learning_rate 5e-5 --num_train_epochs 1 \
    --gradient_checkpointing true --output_dir output/qwen2.5-7b-dpo ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
