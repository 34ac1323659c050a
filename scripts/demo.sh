#!/usr/bin/env bash
# The main job on the embedded default: SmolLM2-135M over the shipped SMS spam data.
# Extract every layer once (a cache hit on later runs), then the layer-wise probe table with
# bootstrap CIs, memorisation capacity (--control on sentences: train accuracy on hashed
# labels) and MDL, a learning curve for the selected row, and one HTML report; then a short
# token-level sweep (UPOS on 400 UD-EWT sentences, with the word-type control task). Outputs go
# to results/demo_sms/ and results/demo_tokens/ (git-ignored); results/demo_sms/timings.json
# holds what each stage took, for the README (benchmarks/render_readme.py reads it from
# benchmarks/results/demo_sms/ once the outputs are copied there).
set -euo pipefail
cd "$(dirname "$0")/.."
clock() { python3 -c 'import time; print(time.time())'; }
t_start=$(clock) load_start=$(python3 -c 'import os; print(*os.getloadavg())')
. scripts/env.sh
fresh=$PROBE_FRESH_INSTALL
out=results/demo_sms
t_install=$(clock)
probe extract --model smollm2-135m --data data/sms_spam.csv --layers all
t_extract=$(clock)
probe sweep --model smollm2-135m --data data/sms_spam.csv --test-size 0.2 --seed 0 \
  --control --mdl --out-dir "$out/sweep" --overwrite
t_sweep=$(clock)
probe curve --from-sweep "$out/sweep" --out-dir "$out/curve"
probe report "$out" --out "$out/report.html"
echo "report: $out/report.html"
t_report=$(clock)
# Token level: every word of 400 UD-EWT sentences (CC BY-SA 4.0, data/ud_ewt/), a UPOS probe
# on every fifth layer with Hewitt & Liang's control task on word types, then tag a sentence.
words=results/demo_tokens
probe sweep --model smollm2-135m --data data/ud_ewt/en_ewt-ud-dev-first400.conllu \
  --task upos --control --layers 0,5,10,15,20,25,30 --out-dir "$words/upos" --overwrite
probe predict --head "$words/upos/head.json" "The quick brown fox jumps over the lazy dog ."
python - "$out/timings.json" "$fresh" "$load_start" "$t_start" "$t_install" "$t_extract" \
  "$t_sweep" "$t_report" "$(clock)" <<'EOF'
import json, os, platform, sys
path, fresh, load, *t = sys.argv[1:]
start, install, extract, sweep, report, end = map(float, t)
cpu = platform.processor() or platform.machine()
if os.path.exists("/proc/cpuinfo"):
    names = [line for line in open("/proc/cpuinfo") if line.startswith("model name")]
    cpu = names[0].split(":", 1)[1].strip() if names else cpu
seconds = {"install": install - start, "extract": extract - install, "sweep": sweep - extract,
           "curve_and_report": report - sweep, "tokens": end - report, "total": end - start}
json.dump({"command": "bash scripts/demo.sh", "fresh_install": fresh == "1", "cpu": cpu,
           "cores": os.cpu_count(), "load_average": [[float(x) for x in load.split()],
           list(os.getloadavg())], "seconds": {k: round(v, 1) for k, v in seconds.items()}},
          open(path, "w"), indent=2)
EOF
