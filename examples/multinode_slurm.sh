#!/usr/bin/env bash
#SBATCH --job-name=prefswift-dpo
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
# `sbatch examples/multinode_slurm.sh` (from the directory the run dir is under, on storage all nodes share): srun
# starts prefswift once per node; prefswift reads SLURM's variables (SLURM_NNODES, SLURM_NODEID,
# SLURM_JOB_NODELIST's first host as MASTER_ADDR, a MASTER_PORT from SLURM_JOB_ID, SLURM_GPUS_ON_NODE processes)
# and starts torchrun for its node. With --ntasks-per-node=8 instead, srun itself starts every rank (SLURM_PROCID,
# SLURM_LOCALID, SLURM_NTASKS) and no torchrun runs. --kill-on-bad-exit: a node that fails ends the job's other tasks;
# prefswift's own watch ends every rank within min(--ddp_timeout, 60 s) with one line naming the lost rank.
# Tiny CPU run (tests/test_cluster.py does it, two "nodes" on one machine, SLURM's variables set by hand):
# SLURM_STEP_ID=0 SLURM_JOB_ID=1 SLURM_NNODES=2 SLURM_NTASKS=2 SLURM_NODEID=0 SLURM_PROCID=0
# SLURM_JOB_NODELIST=localhost PREFSWIFT_EXAMPLE_MODEL=tiny-llama3 PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=2
# CUDA_VISIBLE_DEVICES= bash examples/multinode_slurm.sh, and the same with SLURM_NODEID=1 SLURM_PROCID=1 beside it
set -euo pipefail
cmd=(prefswift dpo
    --model_type "${PREFSWIFT_EXAMPLE_MODEL:-llama3-8b-instruct}"
    --dataset "${PREFSWIFT_EXAMPLE_DATASET:-dpo-en-zh-20k}"
    --lora_target_modules ALL --batch_size 2 --gradient_accumulation_steps 1 --learning_rate 5e-6
    --save_steps 100 --ddp_timeout 600
    --output_dir "${OUTPUT_DIR:-output/llama3-8b-dpo-slurm}" ${MAX_STEPS:+--max_steps "$MAX_STEPS"} "$@")
if [ -n "${SLURM_JOB_ID:-}" ] && [ -z "${SLURM_STEP_ID:-}" ]; then  # the batch script: one task per node runs it
    exec srun --kill-on-bad-exit=1 "${cmd[@]}"
fi
exec "${cmd[@]}"
