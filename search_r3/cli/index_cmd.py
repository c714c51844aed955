"""``search-r3 index``: embed files, folders, JSON lines or a BEIR corpus into the store."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from search_r3.cli.common import (
    MODEL_ENV,
    STORE_HELP,
    add_json_option,
    add_model_options,
    add_store_options,
    load_model,
    note,
    print_json,
    show_progress,
    store_client,
)

if TYPE_CHECKING:
    from search_r3.corpus_readers import Document
    from search_r3.store import IndexResult, QdrantStore

EXAMPLES = (
    """examples:
  search-r3 index notes/ README.md                      # text and markdown files, folders
  search-r3 index corpus.jsonl --collection papers       # JSON lines: {"id", "title", "text", ...}
  search-r3 index ./beir/scifact --collection scifact    # a BEIR folder: its corpus.jsonl
  search-r3 index docs/ --model ./my-model --url http://localhost:6333
  SEARCH_R3_MODEL=./my-model search-r3 index docs/ --json

  search-r3 index notes/ --cleanup full                 # also drop documents of deleted files
  search-r3 index notes/ --reindex                      # embed everything again (new model weights)

Each run syncs the collection with the files: new and edited chunks are embedded, unchanged
ones skipped, and chunks a shortened file lost are deleted (--cleanup incremental, the default).
--cleanup full also deletes every document this run did not read (give the whole corpus);
--cleanup none deletes nothing. Ids are the file path relative to --root (default: the current
folder), #N per chunk, or the JSON id; run again after an interruption to finish the sync.

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
        "--cleanup",
        choices=("incremental", "full", "none"),
        default="incremental",
        help="what to delete after writing: chunks the read sources no longer have (incremental, "
        "default), every document not read in this run (full), or nothing (none)",
    )
    parser.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="folder that document ids and sources are relative to (default: the current folder)",
    )
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="embed every document again, changed or not (e.g. after the model changed); "
        "edited files are re-embedded without it",
    )
    add_json_option(parser)
    add_model_options(parser, reasoning=False)
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search_r3.corpus_readers import DEFAULT_CHUNK_CHARS, read_documents
    from search_r3.store import QdrantStore, check_batch_size, collection_model

    check_batch_size(args.batch_size)  # before reading files or loading the model
    chunk = DEFAULT_CHUNK_CHARS if args.chunk_chars is None else args.chunk_chars
    sources: list[str] = []
    # read first: bad paths fail fast
    docs = list(read_documents(args.paths, chunk_chars=chunk, root=args.root, sources=sources))
    cleanup = None if args.cleanup == "none" else args.cleanup
    if not docs and not (cleanup == "incremental" and sources):
        note(args, "nothing to index (the files are empty)")
        return 1
    client = store_client(args)  # store options fail before the model loads
    try:
        chosen = args.model or os.environ.get(MODEL_ENV)
        embeddings = load_model(args, None if chosen else collection_model(client, args.collection))
        start = time.perf_counter()
        with QdrantStore(embeddings, args.collection, client=client) as store:
            result, total, where = _sync(args, store, docs, cleanup, sources)
            backend = store.backend
    finally:
        client.close()
    summary = {
        "collection": args.collection,
        "store": where,
        "backend": backend,
        "documents": len(docs),
        **asdict(result),
        "count": total,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"indexed {summary['documents']} documents into {args.collection!r} ({where} store, {backend}): "
            f"{result}; {total} in total, {summary['seconds']} s"
        )
    return 0


def _sync(
    args: argparse.Namespace, store: QdrantStore, docs: list[Document], cleanup: Any, sources: list[str]
) -> tuple[IndexResult, int, str]:
    """Sync the store with ``docs``; returns what changed, the new count and the store kind."""
    result = store.index(
        [d.text for d in docs],
        ids=[d.id for d in docs],
        metadatas=[d.metadata for d in docs],
        cleanup=cleanup,
        sources=sources,
        batch_size=args.batch_size,
        show_progress_bar=show_progress(args),
        force_update=args.reindex,
    )
    return result, store.count(), "local" if store.local else "server"
