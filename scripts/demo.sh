#!/usr/bin/env bash
# The main job on the embedded default: SmolLM2-135M over the shipped SMS spam data.
# Extract every layer once (a cache hit on later runs), then the layer-wise probe table with
# bootstrap CIs, control tasks and MDL, a learning curve for the selected row, and one HTML
# report; then a short token-level sweep (UPOS on 400 UD-EWT sentences). Outputs go to
# results/demo_sms/ and results/demo_tokens/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || { python3 -m venv .venv; . .venv/bin/activate; bash scripts/install.sh; }
. .venv/bin/activate
export HF_HUB_OFFLINE=1
out=results/demo_sms
probe extract --model smollm2-135m --data data/sms_spam.csv --layers all
probe sweep --model smollm2-135m --data data/sms_spam.csv --test-size 0.2 --seed 0 \
  --control --mdl --out-dir "$out/sweep"
probe curve --from-sweep "$out/sweep" --out-dir "$out/curve"
probe report "$out" --out "$out/report.html"
echo "report: $out/report.html"
# Token level: every word of 400 UD-EWT sentences (CC BY-SA 4.0, data/ud_ewt/), a UPOS probe
# on every fifth layer with Hewitt & Liang's control task on word types, then tag a sentence.
words=results/demo_tokens
probe sweep --model smollm2-135m --data data/ud_ewt/en_ewt-ud-dev-first400.conllu \
  --task upos --control --layers 0,5,10,15,20,25,30 --out-dir "$words/upos"
probe predict --head "$words/upos/head.json" "The quick brown fox jumps over the lazy dog ."
