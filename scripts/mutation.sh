#!/usr/bin/env bash
# Mutation testing of the numeric core (not part of CI): flip one operator or numeric constant at a time
# (scripts/mutation.py), run the tests that cover the file, count the mutants they kill. The README's development
# section lists the scores. Usage: scripts/mutation.sh [file ...]   (default: all six; MAX mutants per file, SEED)
# Every test run holds the shared CPU lock ($PREFSWIFT_CPU_LOCK, default /tmp/prefswift-cpu.lock) when flock exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
MAX="${MAX:-40}"
SEED="${SEED:-0}"
LOCK=()
if command -v flock >/dev/null; then LOCK=(--lock "${PREFSWIFT_CPU_LOCK:-/tmp/prefswift-cpu.lock}"); fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# the smallest test set that covers each file
declare -A TESTS=(
  [prefswift/algorithms/dpo.py]="tests/test_losses.py tests/test_parity_trl.py -k not+ref_adapter+and+not+lora_reference"
  [prefswift/algorithms/base.py]="tests/test_parity_trl.py -k not+ref_adapter+and+not+lora_reference"
  [prefswift/scoring/logprobs.py]="tests/test_logprobs.py tests/test_gpu_paths.py::test_a_dispatched_model_gives_the_same_numbers"
  [prefswift/scoring/frozen_head.py]="tests/test_logprobs.py"
  [prefswift/scoring/packing.py]="tests/test_prefix_sharing.py"
  [prefswift/algorithms/kto.py]="tests/test_kto_data.py tests/test_kto_parity.py -k not+cli_trajectory+and+not+two_process+and+not+lora_kto_run"
)
ORDER=(prefswift/algorithms/dpo.py prefswift/algorithms/base.py prefswift/scoring/logprobs.py
       prefswift/scoring/frozen_head.py prefswift/scoring/packing.py prefswift/algorithms/kto.py)
files=("$@")
[ ${#files[@]} -eq 0 ] && files=("${ORDER[@]}")
for f in "${files[@]}"; do
  [ -n "${TESTS[$f]:-}" ] || { echo "error: no covering tests listed for $f" >&2; exit 2; }
  # "-k a+b" in the table stands for "-k 'a b'" (a table entry holds no quoting)
  read -r -a t <<< "${TESTS[$f]}"
  for i in "${!t[@]}"; do [ "${t[$i]}" = "-k" ] && t[$((i+1))]="${t[$((i+1))]//+/ }"; done
  "$PY" scripts/mutation.py --max "$MAX" --seed "$SEED" "${LOCK[@]}" "$f" -- "${t[@]}"
done
