"""``search-r3-train mine-negatives``: add hard negatives from BM25 or from the current model.

Hard negatives are the highest-ranked documents that are not judged relevant. Judged positives
are always excluded; ``--skip_top`` also drops the very first hits, which in sparsely judged
collections are often unjudged relevant documents.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_r3.collections import Collection
from search_r3.evaluation import Run, bm25_run, dense_run
from search_r3_train.data import (
    DataFormatError,
    TrainingExample,
    collection_from_examples,
    collection_split,
    examples_from_collection,
    read_jsonl,
    write_jsonl,
)

logger = logging.getLogger(__name__)

EXAMPLES = """examples:
  # a collection's train split: judged documents as positives, BM25 hard negatives
  search-r3-train mine-negatives --collection ../shared/data/cranfield --split train -o train.jsonl
  # add negatives from the current model to existing JSON lines, searching their own texts
  search-r3-train mine-negatives --input train.jsonl --method model --model ./my-model -o train-hn.jsonl
  # search a separate corpus (any collection folder) for the negatives of JSON lines
  search-r3-train mine-negatives --input train.jsonl --corpus ./beir/scifact -o train-hn.jsonl
"""


def _negatives_from_run(
    run: Run, judged: dict[str, set[str]], depth: int, skip_top: int = 0
) -> dict[str, list[str]]:
    """Top ``depth`` unjudged documents per query (after skipping ``skip_top`` of them)."""
    out = {}
    for qid, hits in run.items():
        ranked = [d for d, _ in sorted(hits.items(), key=lambda x: -x[1]) if d not in judged.get(qid, set())]
        out[qid] = ranked[skip_top : skip_top + depth]
    return out


def _judged(collection: Collection) -> dict[str, set[str]]:
    return {q: set(docs) for q, docs in collection.qrels.items()}


def _search_depth(collection: Collection, depth: int, skip_top: int) -> int:
    most_judged = max((len(d) for d in collection.qrels.values()), default=0)
    return depth + skip_top + most_judged


def bm25_negatives_for_collection(
    collection: Collection, depth: int = 30, skip_top: int = 0
) -> dict[str, list[str]]:
    """BM25 hard negatives (document ids) for every query of ``collection``."""
    run = bm25_run(collection, k=_search_depth(collection, depth, skip_top))
    return _negatives_from_run(run, _judged(collection), depth, skip_top)


def model_negatives_for_collection(
    embeddings: Any, collection: Collection, depth: int = 30, skip_top: int = 0
) -> dict[str, list[str]]:
    """Hard negatives from a search-r3 model (documents and direct queries, no reasoning)."""
    run, _ = dense_run(
        embeddings,
        collection,
        reasoning=False,
        k=_search_depth(collection, depth, skip_top),
        show_progress_bar=True,
    )
    return _negatives_from_run(run, _judged(collection), depth, skip_top)


def add_negatives(
    examples: Sequence[TrainingExample],
    method: str = "bm25",
    embeddings: Any = None,
    corpus: Collection | None = None,
    depth: int = 30,
    skip_top: int = 0,
) -> list[TrainingExample]:
    """Examples with mined negatives appended (deduplicated; positives never become negatives).

    The search runs over the examples' own texts plus ``corpus`` when given.
    """
    pool = collection_from_examples(examples, name="examples")
    if corpus is not None:
        known = {v["text"] for v in pool.corpus.values()}
        for doc_id in corpus.doc_ids():
            text = corpus.doc_text(doc_id)
            if text.strip() and text not in known:
                pool.corpus[f"c{doc_id}"] = {"title": "", "text": text}
                known.add(text)
    if method == "bm25":
        mined = bm25_negatives_for_collection(pool, depth, skip_top)
    else:
        mined = model_negatives_for_collection(embeddings, pool, depth, skip_top)
    out = []
    for i, example in enumerate(examples):
        positives = set(example.pos)
        negatives = list(example.neg)
        seen = set(negatives) | positives
        for doc_id in mined.get(f"q{i}", []):
            text = pool.doc_text(doc_id)
            if text not in seen:
                negatives.append(text)
                seen.add(text)
        out.append(TrainingExample(example.query, example.pos, negatives, example.reasoning, example.source))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search-r3-train mine-negatives",
        description="Write training JSON lines with hard negatives mined by BM25 or by a search-r3 model.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="JSON lines {query, pos, neg?, reasoning?} to extend")
    source.add_argument("--collection", type=Path, help="collection folder (BEIR, TREC or Cranfield)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON lines file to write")
    parser.add_argument("--method", choices=("bm25", "model"), default="bm25", help="how to rank documents")
    parser.add_argument("--model", default=None, help="search-r3 model for --method model")
    parser.add_argument("--corpus", type=Path, default=None, help="extra collection to search (with --input)")
    parser.add_argument("--split", default="train", help="query split of --collection (train/dev/test/all)")
    parser.add_argument("--split_fractions", type=float, nargs=3, default=[0.5, 0.2, 0.3])
    parser.add_argument("--split_seed", type=int, default=13)
    parser.add_argument("--depth", type=int, default=30, help="negatives kept per query")
    parser.add_argument(
        "--skip_top", type=int, default=0, help="unjudged top hits to skip (likely positives)"
    )
    parser.add_argument("--device", default=None, help="device of --model (default: best available)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point of ``search-r3-train mine-negatives``; returns the exit code."""
    args = build_parser().parse_args(list(argv))
    if args.method == "model" and not args.model:
        raise DataFormatError("--method model needs --model PATH (a search-r3 model folder or Hub id).")
    embeddings = None
    if args.method == "model":
        from search_r3 import ReasoningEmbeddings

        embeddings = ReasoningEmbeddings.from_pretrained(args.model, device=args.device)
    if args.collection is not None:
        collection = collection_split(args.collection, args.split, args.split_fractions, args.split_seed)
        if args.method == "bm25":
            examples = examples_from_collection(
                collection, negatives_depth=args.depth, seed=args.split_seed, skip_top=args.skip_top
            )
        else:
            base = examples_from_collection(collection, negatives_depth=0, seed=args.split_seed)
            examples = add_negatives(
                base, "model", embeddings, corpus=collection, depth=args.depth, skip_top=args.skip_top
            )
    else:
        corpus = None
        if args.corpus is not None:
            from search_r3.collections import load_collection

            corpus = load_collection(args.corpus)
        examples = add_negatives(
            read_jsonl(args.input), args.method, embeddings, corpus, depth=args.depth, skip_top=args.skip_top
        )
    count = write_jsonl(examples, args.output)
    negatives = sum(len(e.neg) for e in examples)
    print(f"wrote {count} examples with {negatives} negatives in all to {args.output}")
    return 0
