#!/usr/bin/env bash
# The search-r3 command line on a few files: index, search, JSON output, evaluation.
# Run:  bash docs/examples/cli_tour.sh
#       Offline by default, on the shipped search-r3-smollm2-135m.
#       SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
set -euo pipefail
export SEARCH_R3_MODEL="${SEARCH_R3_MODEL:-search-r3-smollm2-135m}"
store="$(mktemp -d)"   # a store of its own, so the tour leaves your default store alone

# 1. Some notes to search: markdown files and a JSON-lines file with metadata.
mkdir -p notes
printf '# Bread\n\nStale bread is not dry: its starch recrystallises (retrogradation).\n' > notes/bread.md
printf '# Slugs\n\nCopper tape and beer traps keep slugs away from lettuce.\n' > notes/garden.md
cat > notes/kitchen.jsonl <<'JSON'
{"id": "fridge", "title": "Bread in the fridge", "text": "Cold speeds up staling; freeze bread instead.", "topic": "food"}
{"id": "compost", "title": "Compost", "text": "Brown and green layers make compost heat up.", "topic": "garden"}
JSON

# 2. Index them into the embedded Qdrant store (stable ids: running it again adds nothing new).
search-r3 index notes/ --path "$store" --collection notes

# 3. Search: the reasoning first, then the ranked hits.
search-r3 search "why does bread go stale?" -k 2 --path "$store" --collection notes \
  --max-reasoning-tokens 32

# 4. Filter on metadata, skip the reasoning, and print JSON for scripts.
search-r3 search "keeping food fresh" --filter topic=food --no-reasoning --json \
  --path "$store" --collection notes > hits.json
python3 -c 'import json; print(json.load(open("hits.json")))'

# 5. Evaluate on a (tiny) BEIR-format collection: reasoning on and off, and BM25, in one table.
mkdir -p beir/qrels
cp notes/kitchen.jsonl beir/corpus.jsonl
printf '{"_id": "q1", "text": "how should I store bread?"}\n' > beir/queries.jsonl
printf 'query-id\tcorpus-id\tscore\nq1\tfridge\t1\n' > beir/qrels/test.tsv
search-r3 eval beir --max-reasoning-tokens 16
