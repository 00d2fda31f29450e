#!/usr/bin/env bash
# Install prefswift (+ test extras) into a virtualenv: $PREFSWIFT_VENV, default ./.venv. Source-safe: it only creates
# the venv and pip-installs.
#   default               exactly requirements/lock.txt (versions and hashes; refresh it with scripts/lock.sh)
#   PREFSWIFT_LATEST=1    the newest versions the ranges in requirements/*.txt allow (scripts/test.sh --latest)
# torch comes first, by kind of machine (PREFSWIFT_TORCH=cpu|cuda chooses; default: cuda when `nvidia-smi -L` lists a
# GPU):
#   cuda   requirements/torch-cuda.txt: torch==2.13.0 as PyPI has it (the CUDA build), triton and the nvidia-*/cuda-*
#          wheels, every version pinned and every file's hash checked (about 3 GB of wheels)
#   cpu    torch==2.13.0 from the CPU index, https://download.pytorch.org/whl/cpu ($PREFSWIFT_TORCH_CPU_INDEX): about
#          190 MB; by version, not by hash (that index is not one scripts/lock.sh reaches). A plain
#          `pip install torch==2.13.0` on Linux x86_64 gets the CUDA build above even on a machine without a GPU.
# A torch already in the venv is kept as it is (a GPU user's own build); its dependencies still come from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PREFSWIFT_VENV:-.venv}"
PY="${PYTHON:-python3}"
TORCH="torch==2.13.0"
TORCH_CPU_INDEX="${PREFSWIFT_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
torch_kind() {
  case "${PREFSWIFT_TORCH:-}" in
    cpu|cuda) echo "$PREFSWIFT_TORCH"; return ;;
    "") ;;
    *) echo "error: PREFSWIFT_TORCH=$PREFSWIFT_TORCH: give cpu or cuda (or leave it unset)" >&2; exit 2 ;;
  esac
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then echo cuda; else echo cpu; fi
}
KIND=$(torch_kind)
if "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[install] keeping the torch already in $VENV: $("$VENV/bin/python" -c "import torch; print(torch.__version__)")"
elif [ "$KIND" = "cuda" ]; then
  $PIP install -q --require-hashes --no-deps -r requirements/torch-cuda.txt
else
  # --no-deps: torch's own dependencies (sympy, networkx, ...) are pinned, with hashes, in requirements/lock.txt
  $PIP install -q --no-deps "$TORCH" --index-url "$TORCH_CPU_INDEX"
fi
if [ "${PREFSWIFT_LATEST:-0}" = "1" ]; then
  # everything newest within the ranges, except torch: the build installed above stays (no CUDA build on a CPU box)
  KEEP=$(mktemp)
  "$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$KEEP"
  $PIP install -q --upgrade --upgrade-strategy eager --constraint "$KEEP" -e ".[${PREFSWIFT_EXTRAS:-test}]"
  rm -f "$KEEP"
else
  $PIP install -q --require-hashes --no-deps -r requirements/lock.txt
  $PIP install -q --no-deps --no-build-isolation -e .
  if [ -n "${PREFSWIFT_EXTRAS:-}" ] && [ "$PREFSWIFT_EXTRAS" != "test" ]; then
    $PIP install -q -e ".[$PREFSWIFT_EXTRAS]"   # extras beyond the lock (gpu): their ranges
  fi
  $PIP check >/dev/null || { $PIP check; echo "error: the installed set is inconsistent (pip check above); refresh the lock with scripts/lock.sh" >&2; exit 1; }
fi
