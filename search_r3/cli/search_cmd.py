"""``search-r3 search``: reason about a query, then print the closest documents."""

from __future__ import annotations

import argparse

from search_r3.cli.common import (
    STORE_HELP,
    add_json_option,
    add_model_options,
    add_store_options,
    load_model,
    open_store,
    print_json,
    print_result,
    recorded_model,
    result_json,
)
from search_r3.errors import InvalidInputError

EXAMPLES = (
    """examples:
  search-r3 search "why does bread go stale?"
  search-r3 search "wing lift at high angles" -k 5 --collection papers
  search-r3 search "heat shields" --no-reasoning                 # one forward pass, no reasoning
  search-r3 search "slug control" --filter topic=gardening --json
  search-r3 search "q1" "q2" --max-reasoning-tokens 32          # several queries
  search-r3 search "boundary layer" --mode dense                 # dense vector only (no BM25)
  search-r3 search "boundary layer" --mode hybrid --fusion dbsf  # BM25 + dense, fused by DBSF

--mode hybrid (the default for collections made by this version) ranks by the dense vector and
by BM25 over the query plus the model's reasoning, fused in one Qdrant query; --mode sparse is
BM25 alone; --mode dense is the dense vector alone (the only mode of older collections).

The model is --model, else $SEARCH_R3_MODEL, else the one the collection was indexed with.

"""
    + STORE_HELP
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search the store (prints the reasoning, then ranked hits)",
        description="Embed each query after a short reasoning and print the closest documents.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="query text (quote it)")
    parser.add_argument("-k", "--top-k", type=int, default=10, help="number of hits (default 10)")
    parser.add_argument("--no-reasoning", action="store_true", help="embed the query without reasoning")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only documents whose metadata KEY equals VALUE (repeat for AND; VALUE a,b for any of)",
    )
    parser.add_argument(
        "--mode",
        choices=["hybrid", "dense", "sparse"],
        default=None,
        help="ranking: hybrid (dense + BM25), dense or sparse (default: hybrid if the collection has both)",
    )
    parser.add_argument(
        "--fusion", choices=["rrf", "dbsf"], default=None, help="how hybrid mode fuses the two rankings"
    )
    add_json_option(parser)
    add_model_options(parser)
    add_store_options(parser)
    parser.set_defaults(func=run)


def parse_filters(items: list[str]) -> dict[str, object] | None:
    """Parse ``--filter`` items: ``topic=a``, ``year=1990``, ``lang=en,de`` (any of).

    Integers and true/false become typed values; a comma separates alternatives.
    """
    if not items:
        return None
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--filter {item!r}: write KEY=VALUE, e.g. --filter topic=gardening.")
        values = [_typed(v.strip()) for v in value.split(",")]
        out[key.strip()] = values if len(values) > 1 else values[0]
    return out


def _typed(value: str) -> object:
    if value.lstrip("-").isdigit():
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value


def run(args: argparse.Namespace) -> int:
    if args.top_k <= 0:
        raise InvalidInputError("-k must be a positive number of hits.")
    filters = parse_filters(args.filter)
    embeddings = load_model(args, recorded_model(args))
    results = []
    with open_store(args, embeddings) as store:
        if store.count() == 0:
            raise InvalidInputError(
                f"Collection {args.collection!r} is empty; index documents first: "
                f"search-r3 index PATH --collection {args.collection}"
            )
        for query in args.queries:
            result = store.search(
                query,
                k=args.top_k,
                filter=filters,
                reasoning=False if args.no_reasoning else None,
                max_reasoning_tokens=args.max_reasoning_tokens,
                mode=args.mode,
                fusion=args.fusion,
            )
            results.append((query, result))
            if not args.json:
                print_result(query, result)
                print()
    if args.json:
        print_json([result_json(q, r) for q, r in results])
    return 0
