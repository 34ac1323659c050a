#!/usr/bin/env bash
# The GPU checks of issue 13, as one prepared script for a lent GPU machine (no network):
# the CUDA tests, then tokens/s and MFU of GPT-2 small (random weights: throughput depends
# on shapes only) on SST-2-sized text, eager and --compile. Results go to ${OUT:-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
export HF_HUB_OFFLINE=1 PROBE_CACHE=${PROBE_CACHE:-/tmp/probe-gpu-store}
fail() { echo "gpu_checks.sh: FAILED: $*" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/gpu.txt" \
  || fail "nvidia-smi found no GPU"
python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || fail "torch $(python -c 'import torch; print(torch.__version__)') sees no CUDA device (a CPU build?)"
# -rs lists skips; a skipped CUDA test means the GPU path was not checked: that is a failure
log=$(mktemp)
python -m pytest -q -rs tests/features/test_cuda.py tests/features/test_device.py 2>&1 | tee "$log" | tail -5 \
  || fail "the CUDA tests failed"
if grep -qiE "[0-9]+ skipped|^SKIPPED" "$log"; then fail "CUDA tests were skipped"; fi
python benchmarks/make_gpt2_small.py /tmp/gpt2-small
DATA=${DATA:-data/sms_spam.csv}
python benchmarks/bench_extract.py --model /tmp/gpt2-small --device cuda --token-budget 0 \
  --data "$DATA" --n 0 --repeat "${REPEAT:-20}" --out "$OUT/extract_gpt2_small_cuda"
python benchmarks/bench_extract.py --model /tmp/gpt2-small --device cuda --token-budget 0 \
  --data "$DATA" --n 0 --repeat "${REPEAT:-20}" --compile --out "$OUT/extract_gpt2_small_cuda_compile"
