#!/usr/bin/env bash
# Stage 1 in miniature: write training data, fine-tune for two steps, load the result.
# Run:  bash docs/examples/sft_quick.sh
#       Offline by default, starting from the shipped search-r3-smollm2-135m.
#       SEARCH_R3_MODEL=path/to/folder: start from another search-r3 model folder
#       (e.g. one made by `search-r3 init` from a Hub model).
set -euo pipefail
examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Training reads a folder: the shipped model's short name resolves to its cached folder (built once).
model="$(python - "${SEARCH_R3_MODEL:-search-r3-smollm2-135m}" <<'PY'
import sys
from search_r3.pretrained import resolve_model_source
print(resolve_model_source(sys.argv[1]))
PY
)"

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
