#!/usr/bin/env bash
# The test command (README, .ci/run): install exactly requirements/lock.txt into ./.venv, check the import layers, then
# run the whole suite offline.
#   bash scripts/test.sh --latest [pytest args]   the newest versions requirements/*.txt allow, in ./.venv-latest: the
#                                                 early warning that a fresh `pip install` has drifted from the lock
#   bash scripts/test.sh --all [pytest args]      also the long end-to-end runs marked `slow` (tests/conftest.py)
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
  case "$1" in
    --latest) export PREFSWIFT_LATEST=1 PREFSWIFT_VENV="${PREFSWIFT_VENV:-.venv-latest}"; shift ;;
    --all) export PREFSWIFT_SLOW_TESTS=1; shift ;;
    *) break ;;
  esac
done
VENV="${PREFSWIFT_VENV:-.venv}"
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PREFSWIFT_HOME="${PREFSWIFT_HOME:-$PWD/.cache/prefswift}"
# the layer contract in .importlinter: no module imports from a layer above it, no import cycles
"$VENV/bin/lint-imports" --no-cache
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
