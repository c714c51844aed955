"""``search-r3 eval``: nDCG@10, Recall@100 and MRR@10 with reasoning on, off, and BM25."""

from __future__ import annotations

import argparse
from pathlib import Path

from search_r3.cli.common import add_json_option, add_model_options, load_model, note, print_json

EXAMPLES = """examples:
  search-r3 eval ../shared/data/cranfield --model ./my-model --max-reasoning-tokens 32
  search-r3 eval ./beir/scifact --split test --json > scifact.json
  search-r3 eval ./trec-covid --queries test --reasoning off        # the project's fixed test split
  search-r3 eval ./cranfield --reasoning none                       # BM25 only: no model needed
  search-r3 eval ./cranfield --metrics nDCG@10 AP P@5 --max-queries 20

DATA is a folder in one of these layouts (detected automatically):
  BEIR     corpus.jsonl, queries.jsonl, qrels/<split>.tsv
  TREC     corpus.jsonl|tsv, topics (tsv, jsonl or <top> SGML), qrels (qid 0 docid rel)
  classic  .I/.T/.W records and a qrels file, as the Cranfield collection ships

Documents are encoded once; query rows time the query side only. Metrics use ir-measures
names (nDCG@10, R@100, RR@10, AP, P@5, ...); the table shows R@ as Recall@ and RR@ as MRR@.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate retrieval on a BEIR, TREC or Cranfield-style collection",
        description="Evaluate a search-r3 model with reasoning on and off against a BM25 baseline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="collection folder")
    parser.add_argument("--split", default="test", help="BEIR qrels split to read (default: test)")
    parser.add_argument(
        "--queries",
        choices=["all", "train", "dev", "test"],
        default="all",
        help="evaluate all judged queries or one part of the fixed 50/20/30 split (seed 13)",
    )
    parser.add_argument("--max-queries", type=int, default=None, help="only the first N judged queries")
    parser.add_argument(
        "--reasoning",
        choices=["both", "on", "off", "none"],
        default="both",
        help="dense rows: reasoning on and off (default), one of them, or none (BM25 only)",
    )
    parser.add_argument("--no-bm25", action="store_true", help="leave out the BM25 row")
    parser.add_argument(
        "--metrics", nargs="+", default=None, help="ir-measures names (default: nDCG@10 R@100 RR@10)"
    )
    parser.add_argument(
        "-k", "--depth", type=int, default=100, help="documents ranked per query (default 100)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write the table (or JSON) to this file"
    )
    add_json_option(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search_r3.collections import load_collection, split_queries
    from search_r3.evaluation import DEFAULT_METRICS, evaluate_model, format_table

    collection = load_collection(args.data, split=args.split)
    if args.queries != "all":
        collection = split_queries(collection)[args.queries]
    judged = collection.judged_query_ids()
    if args.max_queries:
        judged = judged[: args.max_queries]
    collection = collection.subset(judged)
    modes = {"both": (True, False), "on": (True,), "off": (False,), "none": ()}[args.reasoning]
    if not modes and args.no_bm25:
        note(args, "nothing to evaluate: --reasoning none together with --no-bm25")
        return 2
    note(args, f"{collection.name}: {len(collection.corpus)} documents, {len(judged)} judged queries")
    embeddings = load_model(args) if modes else None
    rows = evaluate_model(
        embeddings,
        collection,
        reasoning_modes=modes,
        bm25=not args.no_bm25,
        metrics=tuple(args.metrics or DEFAULT_METRICS),
        k=args.depth,
        max_reasoning_tokens=args.max_reasoning_tokens,
        show_progress_bar=True,
    )
    model_name = str(getattr(getattr(embeddings, "model", None), "name_or_path", "")) if embeddings else None
    if args.json:
        payload = {
            "collection": collection.name,
            "data": str(args.data),
            "queries": len(judged),
            "documents": len(collection.corpus),
            "model": model_name,
            "rows": [row.to_dict() for row in rows],
        }
        print_json(payload)
        text = format_table(rows, "json")
    else:
        text = format_table(rows)
        print(f"{collection.name}: {len(judged)} queries, {len(collection.corpus)} documents")
        print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0
