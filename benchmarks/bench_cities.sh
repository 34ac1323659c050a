#!/usr/bin/env bash
# Issue 30's instrument on Geometry of Truth's `cities` form: SmolLM2-135M on 1,200 true/false
# statements `The city of X is in Y.` (600 cities, both statements of a city in one group),
# every third layer at the block site:
#   1. a sweep comparing the logistic and mass-mean probes (--probe logistic,mass-mean),
#      grouped by city, 5-fold CV choosing C and the row;
#   2. probe intervene at the selected head's layer: its direction added at alphas -4..4
#      (typical-norm units) against 5 random directions, and erased (LEACE).
# Results: benchmarks/results/cities_sweep/ and benchmarks/results/cities_intervene/, the CPU in
# cities_machine.txt. Needs world_places/city_statements.csv (../shared/datasets/world_places).
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE="${1:-../shared/datasets/world_places/city_statements.csv}"
OUT=benchmarks/results
DATA="$(mktemp -d)/cities_1200.csv"
python - "$SOURCE" "$DATA" <<'PY'
import sys
import pandas as pd
frame = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
cities = frame.city.drop_duplicates().sample(600, random_state=0)
frame[frame.city.isin(set(cities))].to_csv(sys.argv[2], index=False)
PY
{ lscpu | grep "Model name"; nproc; uptime; } > "$OUT/cities_machine.txt"
probe sweep --model smollm2-135m --data "$DATA" --group-col city --layers 0:31:3 \
  --probe logistic,mass-mean --out-dir "$OUT/cities_sweep" --overwrite --keep-going
probe intervene --head "$OUT/cities_sweep/head.json" --data "$DATA" --alphas -4,-2,-1,0,1,2,4 \
  --seeds 5 --max-rows 200 --out-dir "$OUT/cities_intervene"
uptime >> "$OUT/cities_machine.txt"
