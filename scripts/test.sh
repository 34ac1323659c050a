#!/usr/bin/env bash
# Run the test suite (CPU only; the whole suite takes a few minutes), installing on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
python -m pytest -q tests "$@"
