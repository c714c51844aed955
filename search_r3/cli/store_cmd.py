"""``search-r3 store``: manage stores; ``store migrate SRC DST`` copies collections between engines."""

from __future__ import annotations

import argparse
import sys

from search_r3.cli.common import add_json_option, note, print_json, show_progress
from search_r3.errors import InvalidInputError

EXAMPLES = """examples:
  search-r3 store migrate ~/.local/share/search-r3/qdrant ./store     # local mode -> embedded engine
  search-r3 store migrate ./store http://localhost:6333                # embedded engine -> a server
  search-r3 store migrate ./store ./copy --collection papers --dst-backend local

SRC and DST are store folders (either engine) or Qdrant server URLs (http:// or https://). A new
DST folder uses the embedded engine unless --dst-backend local. Points are copied by id with
their dense and sparse vectors and payload; running it again continues an interrupted copy and
copies nothing twice. At the end the counts and a sample of points are compared: a difference
exits with status 1. Nothing is deleted from SRC.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "store",
        help="manage stores (migrate a collection between engines, folders and servers)",
        description="Manage search-r3 stores.",
    )
    actions = parser.add_subparsers(dest="store_command", metavar="ACTION", parser_class=type(parser))
    migrate = actions.add_parser(
        "migrate",
        help="copy collections from one store to another (resumable, verified)",
        description="Copy collections (vectors and payload, by id) from SRC to DST, then verify them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.add_argument("src", metavar="SRC", help="store folder or Qdrant server URL to copy from")
    migrate.add_argument("dst", metavar="DST", help="store folder or Qdrant server URL to copy into")
    migrate.add_argument(
        "--collection",
        action="append",
        default=None,
        metavar="NAME",
        help="collection to copy (repeatable; default: every collection of SRC)",
    )
    migrate.add_argument(
        "--src-backend",
        choices=("edge", "local"),
        default=None,
        help="engine of a SRC folder (default: its own)",
    )
    migrate.add_argument(
        "--dst-backend",
        choices=("edge", "local"),
        default=None,
        help="engine of a DST folder (default: its own; edge for a new one)",
    )
    migrate.add_argument("--api-key", default=None, help="API key of a server (SRC or DST)")
    migrate.add_argument("--batch-size", type=_positive, default=512, help="points per request (default 512)")
    add_json_option(migrate)
    migrate.set_defaults(func=run_migrate)
    parser.set_defaults(func=lambda args: _usage(parser))


def _positive(value: str) -> int:
    from search_r3.cli.common import positive_int

    return positive_int(value)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _open(location: str, backend: str | None, api_key: str | None) -> object:
    from search_r3.store import open_client

    if _is_url(location):
        if backend:
            raise InvalidInputError(f"{location} is a server; drop --src-backend / --dst-backend for it.")
        return open_client(url=location, api_key=api_key)
    if location == ":memory:":
        raise InvalidInputError(":memory: lives only in one process; migrate from or into a folder or URL.")
    return open_client(location, backend=backend)


def run_migrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm

    from search_r3.store_backends import backend_name
    from search_r3.store_backends.migrate import migrate_collection

    folders = not _is_url(args.src) and not _is_url(args.dst)
    if folders and Path(args.src).expanduser().resolve() == Path(args.dst).expanduser().resolve():
        raise InvalidInputError("SRC and DST are the same folder; give another DST.")
    if not _is_url(args.src) and not Path(args.src).expanduser().is_dir():
        raise InvalidInputError(f"No store folder {args.src!r} to migrate from.")
    source = _open(args.src, args.src_backend, args.api_key)
    try:
        target = _open(args.dst, args.dst_backend, args.api_key)
        try:
            names = args.collection or sorted(c.name for c in source.get_collections().collections)
            if not names:
                raise InvalidInputError(f"The store {args.src} holds no collection; nothing to migrate.")
            note(args, f"copying {', '.join(names)}: {backend_name(source)} -> {backend_name(target)}")
            reports = []
            for name in names:
                with tqdm(desc=f"Migrating {name}", unit="point", disable=not show_progress(args)) as bar:

                    def progress(done: int, total: int, bar: tqdm = bar) -> None:
                        bar.total = total
                        bar.update(done - bar.n)

                    reports.append(
                        migrate_collection(
                            source, target, name, batch_size=args.batch_size, progress=progress
                        )
                    )
        finally:
            target.close()
    finally:
        source.close()
    if args.json:
        print_json([r.to_dict() for r in reports])
    else:
        for r in reports:
            print(
                f"{r.collection!r}: {r.copied} copied, {r.skipped} already there; {r.target_count} points "
                f"in {args.dst} (= {r.source_count} in the source), {r.sampled} sampled points identical"
            )
    return 0
