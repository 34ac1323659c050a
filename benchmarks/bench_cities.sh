#!/usr/bin/env bash
# Issue 30's instrument on Geometry of Truth's `cities` form: SmolLM2-135M on 1,200 true/false
# statements `The city of X is in Y.` (all 12,000: 6,000 cities, a city's true and false
# statement in one group; CITIES=N samples N cities):
#   1. at each site (block, attn, mlp, resid_mid), every layer 1..30, last and mean
#      pools: a sweep comparing the logistic and mass-mean probes (--probe
#      logistic,mass-mean), grouped by city, 5-fold CV choosing C and the row (the block
#      sweep with --baselines: majority, bag of words, random weights); the four
#      sweeps side by side in cities_sites.md/json (benchmarks/cities_sites.py);
#   2. probe intervene at the block sweep's selected head: its direction added at alphas
#      -1..1 (typical-norm units) on 400 held-out statements against 5 random directions of
#      the same norm, and erased (LEACE).
# Results: benchmarks/results/cities_sweep*/ (one per site), cities_sites.*,
# cities_intervene/, cities_prompted/ and cities_intervene_prompted/, the CPU in
# cities_machine.txt. Needs world_places/city_statements.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE="${1:-../shared/datasets/world_places/city_statements.csv}"
OUT=benchmarks/results
CITIES="${CITIES:-6000}"
DATA="$(mktemp -d)/cities.csv"
python - "$SOURCE" "$DATA" "$CITIES" <<'PY'
import sys
import pandas as pd
frame = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
cities = frame.city.drop_duplicates().sample(int(sys.argv[3]), random_state=0)
frame[frame.city.isin(set(cities))].to_csv(sys.argv[2], index=False)
PY
{ lscpu | grep "Model name"; nproc; uptime; } > "$OUT/cities_machine.txt"
for SITE in block attn mlp resid_mid; do
  FOLDER="$OUT/cities_sweep"; [ "$SITE" = block ] || FOLDER="$OUT/cities_sweep_$SITE"
  BASELINES=(); [ "$SITE" = block ] && BASELINES=(--baselines)  # words, random weights: once
  /usr/bin/time -f "$SITE sweep, extraction included: %e s wall" -a -o "$OUT/cities_machine.txt" \
    probe sweep --model smollm2-135m --data "$DATA" --group-col city --layers 1:31 \
    --site "$SITE" --probe logistic,mass-mean --out-dir "$FOLDER" --overwrite --keep-going \
    "${BASELINES[@]}"
done
python benchmarks/cities_sites.py "$OUT"
/usr/bin/time -f "intervene: %e s wall" -a -o "$OUT/cities_machine.txt" \
  probe intervene --head "$OUT/cities_sweep/head.json" --data "$DATA" \
  --alphas=-1,-0.5,-0.25,-0.1,0,0.1,0.25,0.5,1 --seeds 5 --max-rows 400 \
  --out-dir "$OUT/cities_intervene"
# 3. whether the model's own answer follows: the statements prompted ("... This statement
#    is"), a head at the same layer on that view, the same intervention read also as the
#    next-token margin of " true" over " false" (--verbalizers).
PROMPT='{text} This statement is'
LAYER="$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['layer'])" \
  "$OUT/cities_sweep/head.json")"  # the block sweep's selected layer
VIEW="$(probe extract --model smollm2-135m --data "$DATA" --layers "$LAYER" --prompt "$PROMPT" \
  -q | tail -1)"
probe fit --train "$VIEW" --layer "$LAYER" --pool last --out "$OUT/cities_prompted/head.json" \
  --overwrite -q > /dev/null
/usr/bin/time -f "intervene with verbalizers: %e s wall" -a -o "$OUT/cities_machine.txt" \
  probe intervene --head "$OUT/cities_prompted/head.json" --data "$DATA" \
  --verbalizers '1=" true",0=" false"' --alphas=-1,-0.5,-0.25,-0.1,0,0.1,0.25,0.5,1 \
  --seeds 5 --max-rows 400 --no-erase --out-dir "$OUT/cities_intervene_prompted"
uptime >> "$OUT/cities_machine.txt"
