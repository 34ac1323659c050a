#!/usr/bin/env bash
# Run the test suite (CPU only; the whole suite takes a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || { python3 -m venv .venv; . .venv/bin/activate; bash scripts/install.sh; }
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest -q tests "$@"
