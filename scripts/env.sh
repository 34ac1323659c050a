# Sourced by test.sh and demo.sh: the active virtual environment, else the checkout's .venv;
# scripts/install.sh fills either on first use (PROBE_FRESH_INSTALL=1 says it ran).
PROBE_FRESH_INSTALL=0
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  [ -x "$VIRTUAL_ENV/bin/probe" ] || { bash scripts/install.sh; PROBE_FRESH_INSTALL=1; }
else
  [ -x .venv/bin/probe ] || { bash scripts/install.sh; PROBE_FRESH_INSTALL=1; }
  . .venv/bin/activate
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
