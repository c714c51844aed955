"""``search-r3 delete``: remove documents from a collection by id, by source file or by filter."""

from __future__ import annotations

import argparse
from pathlib import Path

from search_r3.cli.common import STORE_HELP, add_json_option, add_store_options, print_json, store_client
from search_r3.errors import InvalidInputError

EXAMPLES = (
    """examples:
  search-r3 delete notes/bread.md#0 notes/bread.md#1     # by document id
  search-r3 delete --source notes/bread.md               # every chunk of a file
  search-r3 delete --source notes/old/                   # every document read from a folder
  search-r3 delete --filter topic=gardening --collection papers
  search-r3 delete --filter year:int=1990 --json
  search-r3 delete --all --collection scratch            # empty the collection (it stays)

Ids and sources are as `search-r3 index` stores them: paths relative to --root (default: the
current folder). No model is loaded. Several selectors delete the union of what they match;
several --filter items must all match. A collection that does not exist is an error.

"""
    + STORE_HELP
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "delete",
        help="remove documents from the store (by id, source file or filter)",
        description="Remove documents from a collection, by id, by source file or folder, or by metadata.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="document ids to delete")
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="PATH",
        help="delete the documents read from this file, or from any file in this folder (repeatable)",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="delete the documents whose metadata matches, as in `search --filter` (repeat for AND)",
    )
    parser.add_argument("--all", action="store_true", help="delete every document of the collection")
    parser.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="folder that --source paths are relative to, as given to `index` (default: the current folder)",
    )
    add_json_option(parser)
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search_r3.cli.search_cmd import parse_filters
    from search_r3.corpus_readers import relative_source
    from search_r3.store import (
        delete_point_ids,
        point_id,
        require_collection,
        scroll_points,
        source_point_ids,
        to_filter,
    )

    if not (args.ids or args.source or args.filter or args.all):
        raise InvalidInputError(
            "Nothing to delete: give document ids, --source PATH, --filter KEY=VALUE or --all."
        )
    if args.all and (args.ids or args.source or args.filter):
        raise InvalidInputError("--all deletes everything; give it alone, without ids, --source or --filter.")
    filters = parse_filters(args.filter)  # bad filters fail before the store is opened
    root = Path(args.root).expanduser().absolute() if args.root else Path.cwd()
    client = store_client(args)
    try:
        require_collection(client, args.collection)
        name = args.collection
        targets: set[str] = set()
        if args.ids:
            wanted = [point_id(i) for i in args.ids]
            targets |= {str(p.id) for p in client.retrieve(name, ids=wanted, with_payload=False)}
        for source in args.source:
            targets |= set(source_point_ids(client, name, relative_source(Path(source), root)))
        if filters:
            targets |= {str(p.id) for p in scroll_points(client, name, to_filter(filters))}
        if args.all:
            targets |= {str(p.id) for p in scroll_points(client, name)}
        deleted = delete_point_ids(client, name, sorted(targets))
        left = int(client.count(name, exact=True).count)
    finally:
        client.close()
    if args.json:
        print_json({"collection": args.collection, "deleted": deleted, "count": left})
    else:
        print(f"deleted {deleted} documents from {args.collection!r}; {left} left")
    return 0
