#!/usr/bin/env bash
# Stage 1 in miniature: write training data, fine-tune for two steps, load the result.
# Run:  SEARCH_R3_MODEL=path/to/search-r3-model bash docs/examples/sft_quick.sh
set -euo pipefail
examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
model="${SEARCH_R3_MODEL:?set SEARCH_R3_MODEL to a search-r3 model folder, e.g. from search-r3 init}"

cat > train.jsonl <<'JSON'
{"query": "why does bread go stale?", "pos": ["Stale bread is not dry: its starch recrystallises."], "neg": ["Brown and green layers make compost heat up."], "reasoning": "Asks for the cause of staling: starch retrogradation."}
{"query": "keep slugs off lettuce", "pos": ["Copper tape and beer traps keep slugs away from lettuce."], "neg": ["Freeze bread instead of refrigerating it."]}
{"query": "how should I store bread?", "pos": ["Cold speeds up staling: freeze bread instead."], "neg": ["Slugs avoid copper tape."]}
{"query": "how does compost heat up?", "pos": ["Brown and green layers make compost heat up."], "neg": ["Stale bread is not dry."]}
JSON

search-r3-train sft --config "$examples/sft_quick.yaml" \
  --model_name_or_path "$model" --train_file train.jsonl --output_dir runs/sft-quick

# The output folder is a search-r3 model: ReasoningEmbeddings, sentence-transformers, the CLI.
python - <<'PY'
from search_r3 import ReasoningEmbeddings

emb = ReasoningEmbeddings.from_pretrained("runs/sft-quick", max_reasoning_tokens=16)
vectors = emb.encode_documents(["Copper tape keeps slugs away."])
print("trained model loads:", vectors.shape)
PY
