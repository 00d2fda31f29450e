#!/usr/bin/env bash
# Full-parameter DPO under DeepSpeed ZeRO-3 on 8 GPUs: weights, gradients and optimizer state sharded
# (~16 bytes/param / 8 GPUs = ~16 GB per GPU for 8B, plus activations). The reference would need a second
# sharded model, so its log-probs are computed once before training instead (--precompute_ref_log_probs true).
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= NPROC_PER_NODE=2 bash examples/deepspeed_zero3_dpo.sh
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0,1,2,3,4,5,6,7}" \
NPROC_PER_NODE="${NPROC_PER_NODE:-8}" \
prefswift dpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-llama3-8b-instruct}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-ultrafeedback}" \
    --sft_type full --deepspeed zero3 --precompute_ref_log_probs true \
    --batch_size 1 --gradient_accumulation_steps 2 --learning_rate 5e-7 \
    --output_dir output/llama3-8b-dpo-full-zero3 ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
