"""Before/after figures of an RL run: nDCG@10 with reasoning on and off on a fixed query split.

    python -m search_r3_train.rl.evaluate runs/rl-smollm2 --collection ../shared/data/cranfield \\
        --split test --max-queries 30 --max-docs 400 --text-max-length 128 --max-reasoning-tokens 32

A thin wrapper over ``search_r3.evaluation.evaluate_model``: the collection's query split (same
seed and fractions as training), optionally cut to a fixed sample of queries and ranked over their
judged documents plus a fixed random sample of the others (a cheaper proxy on a slow machine; the
same cut gives the same subset for every model, so before/after rows compare).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from search_r3.collections import Collection, load_collection, split_queries


def subset(
    collection: Collection, max_queries: int | None, max_docs: int | None, seed: int = 13
) -> Collection:
    """A fixed sample of judged queries, ranked over their judged documents plus a sample of the rest."""
    queries = collection.judged_query_ids()
    if max_queries and max_queries < len(queries):
        keep = set(random.Random(seed).sample(queries, max_queries))
        queries = [q for q in queries if q in keep]
    corpus_ids = [d for d in collection.doc_ids() if collection.doc_text(d).strip()]
    if max_docs and max_docs < len(corpus_ids):
        judged = {d for q in queries for d in collection.qrels[q] if d in collection.corpus}
        others = sorted(set(corpus_ids) - judged)
        extra = random.Random(seed).sample(others, max(0, max_docs - len(judged)))
        wanted = judged | set(extra)
        corpus_ids = [d for d in corpus_ids if d in wanted]
    return Collection(
        name=f"{collection.name}[{len(queries)}q,{len(corpus_ids)}d]",
        corpus={d: collection.corpus[d] for d in corpus_ids},
        queries={q: collection.queries[q] for q in queries},
        qrels={q: collection.qrels[q] for q in queries},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search_r3_train.rl.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="search-r3 model folder (e.g. the sft or rl output)")
    parser.add_argument("--collection", required=True, help="BEIR, TREC or classic collection folder")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test", "all"])
    parser.add_argument("--max-queries", type=int, help="a fixed sample of this many queries")
    parser.add_argument("--max-docs", type=int, help="rank over judged documents + a fixed sample, this many")
    parser.add_argument("--text-max-length", type=int, help="tokens per text (default: the model's)")
    parser.add_argument("--max-reasoning-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--output", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)

    from search_r3 import ReasoningEmbeddings
    from search_r3.evaluation import evaluate_model, format_table

    collection = load_collection(args.collection)
    if args.split != "all":
        collection = split_queries(collection, seed=args.seed)[args.split]
    collection = subset(collection, args.max_queries, args.max_docs, args.seed)
    print(f"{collection}", flush=True)
    embeddings = ReasoningEmbeddings.from_pretrained(
        args.model, device="cpu", max_length=args.text_max_length
    )
    rows = evaluate_model(embeddings, collection, max_reasoning_tokens=args.max_reasoning_tokens)
    print(format_table(rows))
    if args.output:
        payload = {"model": args.model, "collection": collection.name, "rows": [r.to_dict() for r in rows]}
        args.output.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
