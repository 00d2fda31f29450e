#!/usr/bin/env bash
# The one command a person with a GPU runs: GPU tests, a QLoRA train + merge, and the benchmark against TRL on a
# Qwen2.5-1.5B-shaped model in bf16 on UltraFeedback-like lengths; one table at the end (passed/failed, speed ratio, peak memory ratio).
#
#   bash scripts/gpu_check.sh            # in the repo root, with a venv that has torch (CUDA) installed
#   bash scripts/gpu_check.sh --dry-run  # print what it would run
#
# Offline machines: put wheels (trl, datasets, modelscope, bitsandbytes, deepspeed, ... and their dependencies) in
# $PREFSWIFT_WHEELS (default ./wheels); they are installed with --no-index from there. Sized to finish within
# 8 minutes on one H100/H200. Python: $PYTHON (default: .venv/bin/python if present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
PY_BIN="$(dirname "$(command -v "$PY" || echo "$PY")")"  # its `prefswift` command, for the recipes
WHEELS="${PREFSWIFT_WHEELS:-wheels}"
OUT="${GPU_CHECK_OUT:-${OUT:-/tmp}/prefswift_gpu_check}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PREFSWIFT_HOME="${PREFSWIFT_HOME:-$OUT/home}"

# Recipes in examples/ whose shape a CPU cannot run ("name:reason"). tests/test_examples.py runs every recipe for
# real at tiny size on CPU (their CPU-compatible form: gloo DDP, DeepSpeed's CPU accelerator, bitsandbytes' CPU
# backend) and checks that each one is covered there or named here.
GPU_ONLY_EXAMPLES=(
  "mp_ddp_4gpu_dpo:model parallel (device_map over 2 GPUs per replica) needs 4 GPUs; its DDP half runs on CPU"
  "qlora_orpo_llama3:--optim paged_adamw_8bit needs CUDA (the CPU run uses adamw_torch); the qlora train step runs the recipe"
)

STEPS=(
  "install|$PY -m pip install -q --no-index --find-links $WHEELS -r requirements/core.txt -r requirements/test.txt bitsandbytes 2>/dev/null || $PY -m pip install -q -r requirements/core.txt -r requirements/test.txt; $PY -m pip install -q --no-deps -e ."
  "gpu tests|$PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_gpu_paths.py tests/test_prefix_sharing.py"
  "fsdp2 (2 GPUs)|$PY -m pytest -q -p no:cacheprovider -rs tests/test_gpu_fsdp.py"
  "qlora train|PATH=\"$PY_BIN:\$PATH\" PREFSWIFT_EXAMPLE_MODEL=tiny-llama3 PREFSWIFT_EXAMPLE_DATASET=demo MAX_STEPS=20 CUDA_VISIBLE_DEVICES=0 bash examples/qlora_orpo_llama3.sh --logging_steps 5 --overwrite_output_dir true --output_dir $OUT/qlora"
  "qlora merge|$PY -m prefswift merge-lora --ckpt_dir $OUT/qlora/adapter --overwrite true"
  "bench 1.5B bf16|$PY scripts/benchmark.py --shape qwen2.5-1.5b --dtype bf16 --lengths realistic --seq_len 2048 --batch 8 --lora_r 16 --steps 4 --warmup 2 --threads 8 --json $OUT/bench.json"
)

if [ "$DRY" = 1 ]; then
  echo "gpu_check would run (python: $PY, wheels: $WHEELS, output: $OUT):"
  for step in "${STEPS[@]}"; do echo "  [${step%%|*}] ${step#*|}"; done
  echo "recipes only a GPU machine runs in full:"
  for item in "${GPU_ONLY_EXAMPLES[@]}"; do echo "  examples/${item%%:*}.sh: ${item#*:}"; done
  exit 0
fi

mkdir -p "$OUT"
declare -A RESULT
for step in "${STEPS[@]}"; do
  name="${step%%|*}"; cmd="${step#*|}"
  echo "=== $name: $cmd"
  start=$(date +%s)
  if bash -c "$cmd" > "$OUT/${name// /_}.log" 2>&1; then RESULT[$name]="passed"; else RESULT[$name]="FAILED"; fi
  RESULT[$name]="${RESULT[$name]} ($(( $(date +%s) - start )) s)"
  tail -n 3 "$OUT/${name// /_}.log"
done

echo
echo "| check | result |"
echo "|---|---|"
for step in "${STEPS[@]}"; do name="${step%%|*}"; echo "| $name | ${RESULT[$name]} |"; done
if [ -f "$OUT/bench.json" ]; then
  "$PY" - "$OUT/bench.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print("\n| algo | prefswift tok/s | TRL tok/s | speed (x TRL) | MFU ours / TRL | peak memory (x TRL) | first-step loss agrees |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("oom"):
        print(f"| {r['algo']} | out of memory: {', '.join(r['oom'])} | | | | | |")
        continue
    print(f"| {r['algo']} | {r['ours_tok_s']:.0f} | {r['trl_tok_s']:.0f} | {r['speed_ratio']:.2f}x | "
          f"{100 * r['ours_mfu']:.0f}% / {100 * r['trl_mfu']:.0f}% | {r['memory_ratio']:.2f}x | {r['loss_ok']} |")
EOF
fi
