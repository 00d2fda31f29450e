#!/usr/bin/env bash
# The test command (README, .ci/run): install into ./.venv, check the import layers, then run the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PREFSWIFT_HOME="${PREFSWIFT_HOME:-$PWD/.cache/prefswift}"
# the layer contract in .importlinter: no module imports from a layer above it, no import cycles
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
