#!/usr/bin/env bash
# NNODES machines x NPROC_PER_NODE GPUs, LoRA DPO, plain torchrun rendezvous (ms-swift's convention). Run this same
# script on every node, each with its NODE_RANK (0 .. NNODES-1); MASTER_ADDR is node 0's address, reachable from all.
# --output_dir must be on storage every node mounts at the same path (checked at start: one line when it is not).
# A node or rank lost mid-run stops every other rank within min(--ddp_timeout, 60 s) with one line naming it; resume
# with --resume_from_checkpoint latest, also with another number of nodes (the global batch is kept).
# Memory per GPU for a 7-8B model in bf16 as ddp_4gpu_orpo.sh. Use --deepspeed zero2|zero3 or --fsdp full_shard the same.
# Tiny CPU run (tests/test_cluster.py does it, two "nodes" on one machine): PREFSWIFT_EXAMPLE_MODEL=tiny-llama3
# PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2 CUDA_VISIBLE_DEVICES= NNODES=2 NPROC_PER_NODE=1 MASTER_ADDR=127.0.0.1
# NODE_RANK=0 bash examples/multinode_torchrun.sh, and the same with NODE_RANK=1 beside it
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-0,1,2,3,4,5,6,7}" \
NNODES="${NNODES:-2}" \
NODE_RANK="${NODE_RANK:-0}" \
MASTER_ADDR="${MASTER_ADDR:-10.0.0.1}" \
MASTER_PORT="${MASTER_PORT:-29500}" \
NPROC_PER_NODE="${NPROC_PER_NODE:-8}" \
prefswift dpo \
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-llama3-8b-instruct}" \
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-dpo-en-zh-20k}" \
    --lora_target_modules ALL --batch_size 2 --gradient_accumulation_steps 1 --learning_rate 5e-6 \
    --save_steps 100 --ddp_timeout 600 \
    --output_dir "${OUTPUT_DIR:-output/llama3-8b-dpo-multinode}" ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@"
