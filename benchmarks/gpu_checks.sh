#!/usr/bin/env bash
# The GPU checks of issue 13, as one prepared script for a lent GPU machine (no network):
# the CUDA tests, then tokens/s and MFU of GPT-2 small (random weights: throughput depends
# on shapes only) on SST-2-sized text, eager and --compile. Results go to ${OUT:-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
export HF_HUB_OFFLINE=1 PROBE_CACHE=${PROBE_CACHE:-/tmp/probe-gpu-store}
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/gpu.txt"
python -m pytest -q tests/features/test_cuda.py tests/features/test_device.py 2>&1 | tail -3
python benchmarks/make_gpt2_small.py /tmp/gpt2-small
DATA=${DATA:-data/sms_spam.csv}
python benchmarks/bench_extract.py --model /tmp/gpt2-small --device cuda --token-budget 0 \
  --data "$DATA" --n 0 --repeat "${REPEAT:-20}" --out "$OUT/extract_gpt2_small_cuda"
python benchmarks/bench_extract.py --model /tmp/gpt2-small --device cuda --token-budget 0 \
  --data "$DATA" --n 0 --repeat "${REPEAT:-20}" --compile --out "$OUT/extract_gpt2_small_cuda_compile"
