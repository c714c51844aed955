"""``search-r3 index``: embed files, folders, JSON lines or a BEIR corpus into the store."""

from __future__ import annotations

import argparse
import time

from search_r3.cli.common import (
    STORE_HELP,
    add_json_option,
    add_model_options,
    add_store_options,
    load_model,
    note,
    open_store,
    print_json,
    recorded_model,
    show_progress,
)

EXAMPLES = (
    """examples:
  search-r3 index notes/ README.md                      # text and markdown files, folders
  search-r3 index corpus.jsonl --collection papers       # JSON lines: {"id", "title", "text", ...}
  search-r3 index ./beir/scifact --collection scifact    # a BEIR folder: its corpus.jsonl
  search-r3 index docs/ --model ./my-model --url http://localhost:6333
  SEARCH_R3_MODEL=./my-model search-r3 index docs/ --json

Documents keep stable ids (file path, #N per chunk, or the JSON id), so running the same
command again, or after an interruption, only embeds what is not stored yet.

"""
    + STORE_HELP
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="embed documents into the vector store",
        description="Embed text/markdown files, folders, JSON lines or a BEIR corpus into Qdrant.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    parser.add_argument(
        "--chunk-chars",
        type=int,
        default=None,
        help="split text files at blank lines into chunks of at most N characters (default 1500; 0: off)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="documents embedded per batch (default 32)"
    )
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="embed again documents whose id is already stored (after edits)",
    )
    add_json_option(parser)
    add_model_options(parser, reasoning=False)
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search_r3.corpus_readers import DEFAULT_CHUNK_CHARS, read_documents

    chunk = DEFAULT_CHUNK_CHARS if args.chunk_chars is None else (args.chunk_chars or None)
    docs = list(read_documents(args.paths, chunk_chars=chunk))  # read first: bad paths fail fast
    if not docs:
        note(args, "nothing to index (the files are empty)")
        return 1
    embeddings = load_model(args, recorded_model(args))
    start = time.perf_counter()
    with open_store(args, embeddings) as store:
        before = store.count()
        store.add_documents(
            [d.text for d in docs],
            ids=[d.id for d in docs],
            metadatas=[d.metadata for d in docs],
            batch_size=args.batch_size,
            show_progress_bar=show_progress(args),
            skip_existing=not args.reindex,
        )
        total = store.count()
        where = "local" if store.local else "server"
    summary = {
        "collection": args.collection,
        "store": where,
        "documents": len(docs),
        "added": total - before,
        "count": total,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"indexed {summary['documents']} documents into {args.collection!r} ({where} store): "
            f"{summary['added']} new, {total} in total, {summary['seconds']} s"
        )
    return 0
