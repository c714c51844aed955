"""Training data for search-r3-train: JSON lines, checked line by line; hard negatives mined by BM25.

Run:  python docs/examples/training_data.py      (needs: pip install -e training)
"""

import json
from pathlib import Path

from search_r3_train.data import DataFormatError, read_jsonl, write_jsonl
from search_r3_train.mine_negatives import add_negatives

rows = [
    {
        "query": "why does bread go stale?",
        "pos": ["Stale bread is not dry: its starch recrystallises (retrogradation)."],
        "neg": ["Brown and green layers make compost heat up."],
        # optional: reasoning the model should learn to write before the embed token
        "reasoning": "The query asks for the cause of staling: starch retrogradation, not drying.",
    },
    {
        "query": "keep slugs off lettuce",
        "pos": ["Copper tape and beer traps keep slugs away from lettuce."],
        "neg": [],
    },
    {
        "query": "how should I store bread?",
        "pos": ["Cold speeds up staling: freeze bread instead of refrigerating it."],
    },
]
Path("train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

examples = read_jsonl("train.jsonl")  # every line is checked before training starts
print(len(examples), "examples;", "reasoning:", [bool(e.reasoning) for e in examples])

# Problems are reported with the file and line, all at once, not as a crash inside training.
Path("bad.jsonl").write_text('{"query": "ok", "pos": ["fine"]}\n{"query": "no positives", "pos": []}\n')
try:
    read_jsonl("bad.jsonl")
except DataFormatError as error:
    print(error)

# Hard negatives: the best-ranked texts that are not positives (BM25 here; --method model uses a
# search-r3 model). From the command line:
#   search-r3-train mine-negatives --input train.jsonl -o train-hn.jsonl --depth 2
mined = add_negatives(examples, method="bm25", depth=2)
write_jsonl(mined, "train-hn.jsonl")
for example in mined:
    print(f"{example.query!r}: {len(example.neg)} negatives")
