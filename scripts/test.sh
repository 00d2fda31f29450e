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
# ---- browser for the `prefswift web` tests (tests/test_web_browser.py): Debian's chromium + chromium-driver, driven by
# Selenium with the system chromedriver (never a downloaded browser). Installed here when missing (needs root/apt).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "scripts/test.sh: chromium/chromedriver missing and apt-get unavailable (not root): the browser tests skip" >&2
  fi
fi
# ---- end of the browser block
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PREFSWIFT_HOME="${PREFSWIFT_HOME:-$PWD/.cache/prefswift}"
# the layer contract in .importlinter: no module imports from a layer above it, no import cycles
"$VENV/bin/lint-imports" --no-cache
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
