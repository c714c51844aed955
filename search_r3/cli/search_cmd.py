"""``search-r3 search``: reason about a query, then print the closest documents."""

from __future__ import annotations

import argparse
import re

from search_r3.cli.common import (
    STORE_HELP,
    add_json_option,
    add_model_options,
    add_store_options,
    check_collection,
    load_model,
    open_store,
    positive_int,
    print_json,
    print_result,
    query_text,
    read_stdin_queries,
    result_json,
)
from search_r3.errors import InvalidInputError

EXAMPLES = (
    """examples:
  search-r3 search "why does bread go stale?"
  search-r3 search "wing lift at high angles" -k 5 --collection papers
  search-r3 search "heat shields" --no-reasoning                 # one forward pass, no reasoning
  search-r3 search "slug control" --filter topic=gardening --json
  search-r3 search "boston" --filter zip:str=02139 --filter year:int=1990
  search-r3 search "q1" "q2" --max-reasoning-tokens 32          # several queries
  echo "why does bread go stale?" | search-r3 search -           # the query from stdin
  search-r3 search "boundary layer" --mode dense                 # dense vector only (no BM25)
  search-r3 search "boundary layer" --mode hybrid --fusion dbsf  # BM25 + dense, fused by DBSF
  search-r3 search "boundary layer" --exact                      # exact ranking, no HNSW index

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
    parser.add_argument(
        "queries",
        nargs="+",
        type=query_text,
        metavar="QUERY",
        help="query text (quote it); - reads it from stdin",
    )
    parser.add_argument("-k", "--top-k", type=positive_int, default=10, help="number of hits (default 10)")
    parser.add_argument("--no-reasoning", action="store_true", help="embed the query without reasoning")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only documents whose metadata KEY equals VALUE (repeat for AND; a,b: any of; 123 and true "
        "match the string or the typed value; KEY:str=, KEY:int=, KEY:bool= pick one type)",
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
    parser.add_argument(
        "--hnsw-ef",
        type=positive_int,
        default=None,
        metavar="N",
        help="candidates the HNSW index search keeps (more: higher recall, slower; embedded engine "
        "and servers)",
    )
    parser.add_argument(
        "--exact", action="store_true", help="rank every document exactly, without the HNSW index"
    )
    add_json_option(parser)
    add_model_options(parser)
    add_store_options(parser)
    parser.set_defaults(func=run)


def parse_filters(items: list[str]) -> dict[str, object] | None:
    r"""Parse ``--filter`` items into a store filter (all items must match).

    * ``topic=art``: the metadata value ``"art"``.
    * ``code=123``, ``flag=true``: the string, or the integer / bool, whichever the documents
      store (``{"code": ["123", 123]}``), so ``zip=02139`` finds the string ``"02139"``.
    * ``code:str=123``, ``year:int=1990``, ``flag:bool=true``: only that type.
    * ``lang=en,de``: any of the values; write ``\,`` for a comma inside a value.

    Example:
        ```python
        parse_filters(["zip=02139", "year:int=1990", "lang=en,de"])
        # {"zip": ["02139", 2139], "year": 1990, "lang": ["en", "de"]}
        ```
    """
    if not items:
        return None
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, _, kind = key.strip().partition(":")
        if not sep or not key:
            raise InvalidInputError(
                f"--filter {item!r}: write KEY=VALUE (or KEY:TYPE=VALUE), e.g. --filter topic=gardening."
            )
        if kind and kind not in _TYPES:
            raise InvalidInputError(
                f"--filter {item!r}: unknown type {kind!r}; use {', '.join(_TYPES)}, e.g. year:int=1990."
            )
        values: list[object] = []
        seen: set[tuple[type, object]] = set()
        for raw in _COMMA.split(value):
            for typed in _typed(raw.replace("\\,", ",").strip(), kind, item):
                if (type(typed), typed) not in seen:
                    seen.add((type(typed), typed))
                    values.append(typed)
        if key in out:
            raise InvalidInputError(f"--filter {key!r} is given twice; write {key}=a,b to match a or b.")
        out[key] = values if len(values) > 1 else values[0]
    return out


_TYPES = ("str", "int", "bool")
_COMMA = re.compile(r"(?<!\\),")


def _typed(value: str, kind: str, item: str) -> list[object]:
    """The values ``value`` may mean: as written, or as the type asked for."""
    if kind == "str":
        return [value]
    as_int = int(value) if re.fullmatch(r"[+-]?\d+", value) else None
    as_bool = {"true": True, "false": False}.get(value.lower())
    if kind == "int":
        if as_int is None:
            raise InvalidInputError(f"--filter {item!r}: {value!r} is not an integer.")
        return [as_int]
    if kind == "bool":
        if as_bool is None:
            raise InvalidInputError(f"--filter {item!r}: {value!r} is not true or false.")
        return [as_bool]
    extra = as_int if as_int is not None else as_bool
    return [value] if extra is None else [value, extra]


def run(args: argparse.Namespace) -> int:
    queries = read_stdin_queries(args.queries)
    filters = parse_filters(args.filter)
    recorded = check_collection(args)  # store problems show before the model load (5-10 s)
    embeddings = load_model(args, recorded)
    results = []
    with open_store(args, embeddings) as store:
        if store.count() == 0:
            raise InvalidInputError(
                f"Collection {args.collection!r} is empty; index documents first: "
                f"search-r3 index PATH --collection {args.collection}"
            )
        for query in queries:
            result = store.search(
                query,
                k=args.top_k,
                filter=filters,
                reasoning=False if args.no_reasoning else None,
                max_reasoning_tokens=args.max_reasoning_tokens,
                mode=args.mode,
                fusion=args.fusion,
                hnsw_ef=args.hnsw_ef,
                exact=args.exact or None,
            )
            results.append((query, result))
            if not args.json:
                print_result(query, result)
                print()
    if args.json:
        print_json([result_json(q, r) for q, r in results])
    return 0
