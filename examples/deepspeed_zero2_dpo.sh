#!/usr/bin/env bash
# DPO with LoRA under DeepSpeed ZeRO-2 on 4 GPUs: optimizer state and gradients sharded. Memory per GPU for a
# 7-8B model in bf16: ~17 GB weights (replicated) + activations.
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= NPROC_PER_NODE=2 bash examples/deepspeed_zero2_dpo.sh
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0,1,2,3}" \
NPROC_PER_NODE="${NPROC_PER_NODE:-4}" \
prefswift dpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-llama3-8b-instruct}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-ultrafeedback}" \
    --lora_target_modules ALL --deepspeed zero2 \
    --batch_size 1 --gradient_accumulation_steps 4 --learning_rate 5e-6 \
    --output_dir output/llama3-8b-dpo-zero2 ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
