#!/usr/bin/env bash
# The main job on the embedded default: SmolLM2-135M over the shipped SMS spam data.
# Extract every layer once, then the layer-wise probe table (a cache hit on later runs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || { python3 -m venv .venv; . .venv/bin/activate; bash scripts/install.sh; }
. .venv/bin/activate
export HF_HUB_OFFLINE=1
probe extract --model smollm2-135m --data data/sms_spam.csv --layers all
probe sweep --model smollm2-135m --data data/sms_spam.csv --test-size 0.2 --seed 0 \
  --out-dir benchmarks/results/demo_sms
