#!/usr/bin/env bash
# Install prefswift (+ test extras) into a virtualenv: $PREFSWIFT_VENV, default ./.venv. Source-safe: it only creates
# the venv and pip-installs.
#   default               exactly requirements/lock.txt (versions and hashes; refresh it with scripts/lock.sh)
#   PREFSWIFT_LATEST=1    the newest versions the ranges in requirements/*.txt allow (scripts/test.sh --latest)
# torch comes first: a CPU-only machine gets the CPU wheel torch==2.13.0, a machine with an NVIDIA driver the CUDA build
# of the same version; a torch already in the venv is kept as it is (a GPU user's own build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PREFSWIFT_VENV:-.venv}"
PY="${PYTHON:-python3}"
TORCH="torch==2.13.0"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  $PIP install -q "$TORCH"
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
