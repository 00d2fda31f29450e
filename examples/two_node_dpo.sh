#!/usr/bin/env bash
# Two machines x 8 GPUs, ZeRO-2 + LoRA DPO. Run on node 0 with NODE_RANK=0 and on node 1 with NODE_RANK=1;
# MASTER_ADDR is node 0's address, reachable from node 1. Memory per GPU as in deepspeed_zero2_dpo.sh.
# Tiny CPU run of this same script (tests/test_examples.py does it): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= NPROC_PER_NODE=1 MASTER_ADDR=127.0.0.1 NODE_RANK=0
# bash examples/two_node_dpo.sh, and the same with NODE_RANK=1 beside it (two "nodes" on one machine)
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0,1,2,3,4,5,6,7}" \
NNODES="${NNODES:-2}" \
NODE_RANK=${NODE_RANK:-0} \
MASTER_ADDR=${MASTER_ADDR:-10.0.0.1} \
MASTER_PORT="${MASTER_PORT:-29500}" \
NPROC_PER_NODE="${NPROC_PER_NODE:-8}" \
prefswift dpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-qwen2.5-7b-instruct}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-dpo-en-zh-20k}" \
    --lora_target_modules ALL --deepspeed zero2 \
    --batch_size 2 --gradient_accumulation_steps 1 --learning_rate 5e-6 \
    --output_dir output/qwen2.5-7b-dpo-2node ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
