"""``search-r3 serve``: an OpenAI-compatible embeddings (and search) server over HTTP."""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path

from search_r3.cli.common import add_model_options, load_model, note, resolve_model
from search_r3.errors import InvalidInputError, SearchR3Error

API_KEY_ENV = "SEARCH_R3_API_KEY"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

EXAMPLES = """examples:
  search-r3 serve --model search-r3-smollm2-135m                     # http://127.0.0.1:8080/v1
  search-r3 serve --model ./my-model --path ./db --collection notes  # also POST /v1/search
  SEARCH_R3_API_KEY=secret search-r3 serve --model ./my-model --host 0.0.0.0 --port 9000
  search-r3 serve --model ./my-model --cache-path ~/.cache/search-r3/queries.sqlite

  curl http://127.0.0.1:8080/v1/embeddings -H 'Content-Type: application/json' \\
       -d '{"model": "search-r3-smollm2-135m", "input": "why does bread go stale?"}'

OpenAI clients: base_url http://127.0.0.1:8080/v1 (any api_key unless --api-key is set).
Inputs without input_type are queries (they reason) unless --default-input-type document;
base URLs .../v1/query and .../v1/document fix the type for clients that cannot add fields.
First Ctrl-C / SIGTERM drains (in-flight requests finish, new ones get 503); a second stops.

store (optional; without it /v1/search answers 404):
  --path DIR (an embedded store folder; one process per folder) or --url URL (a Qdrant server, with
  $QDRANT_API_KEY or --qdrant-api-key). $QDRANT_URL is used when neither is given.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve embeddings and search over HTTP (OpenAI-compatible)",
        description="Run an OpenAI-compatible embeddings server (POST /v1/embeddings) with "
        "continuous batching of reasoning queries, a query cache, and POST /v1/search.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(parser)
    store = parser.add_argument_group("store")
    store.add_argument("--path", default=None, help="local Qdrant store folder for /v1/search")
    store.add_argument("--url", default=None, help="Qdrant server URL for /v1/search (default: $QDRANT_URL)")
    store.add_argument("--qdrant-api-key", default=None, help="Qdrant server API key ($QDRANT_API_KEY)")
    store.add_argument("--collection", default="search_r3", help="collection name (default: search_r3)")
    store.add_argument(
        "--backend",
        choices=("edge", "local"),
        default=None,
        help="engine of the --path folder (default: the one that made it)",
    )
    http = parser.add_argument_group("server")
    http.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    http.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    http.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else none)",
    )
    http.add_argument(
        "--served-model-name", default=None, help="model id clients send (default: --model's name)"
    )
    http.add_argument(
        "--default-input-type",
        choices=["query", "document"],
        default="query",
        help="type of inputs that name none (default: query, i.e. reason first)",
    )
    http.add_argument(
        "--max-batch-size",
        type=int,
        default=32,
        help="queries decoding together (default 32; 1: one at a time)",
    )
    http.add_argument("--max-inputs", type=int, default=256, help="texts per request (default 256)")
    http.add_argument(
        "--max-input-chars", type=int, default=16_384, help="characters per text (default 16384)"
    )
    http.add_argument(
        "--max-total-chars", type=int, default=1_048_576, help="characters per request (default 1048576)"
    )
    http.add_argument(
        "--max-pending", type=int, default=1024, help="queries queued before requests get 429 (default 1024)"
    )
    http.add_argument(
        "--reasoning-limit",
        type=int,
        default=512,
        help="highest max_reasoning_tokens a request may ask (512)",
    )
    http.add_argument(
        "--cache-size", type=int, default=10_000, help="query cache entries (default 10000; 0: off)"
    )
    http.add_argument(
        "--cache-path", default=None, help="SQLite file that keeps the query cache across restarts"
    )
    http.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds a shutdown waits (default 30)"
    )
    http.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the engine, which runs all the model's work, shared by its decode workers "
        "(default: torch's, OMP_NUM_THREADS or the core count; on a machine shared with other jobs 1 "
        "can be faster)",
    )
    http.add_argument(
        "--decode-workers",
        default="auto",
        help="decode workers: threads with a batch of their own, one CPU thread each, sharing "
        "--max-batch-size and --threads (default auto: one per thread when each gets 4 rows)",
    )
    http.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(func=run)


def _check_arguments(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise InvalidInputError(f"--port {args.port} is not a port; use 1-65535.")
    for name in ("max_batch_size", "max_inputs", "max_input_chars", "max_total_chars", "max_pending"):
        if getattr(args, name) <= 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be positive.")
    if args.cache_size < 0:
        raise InvalidInputError("--cache-size must be 0 (off) or positive.")
    if args.threads is not None and args.threads <= 0:
        raise InvalidInputError(f"--threads {args.threads}: give a positive number of CPU threads.")
    if args.decode_workers != "auto":
        try:
            args.decode_workers = int(args.decode_workers)
        except ValueError:
            args.decode_workers = 0
        if not 1 <= args.decode_workers <= args.max_batch_size:
            raise InvalidInputError(
                "--decode-workers takes 'auto' or a number from 1 to --max-batch-size "
                f"({args.max_batch_size})."
            )
    if args.cache_path and args.cache_size == 0:
        raise InvalidInputError("--cache-path needs a cache: drop --cache-size 0.")
    if args.path and args.url:
        raise InvalidInputError("Give --path (local store) or --url (Qdrant server), not both.")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise SearchR3Error(
            f"serve needs the server extra ({exc.name} is missing): pip install 'search-r3[serve]'"
        ) from exc
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            reason = "is already in use (pick another --port)" if busy else f"cannot be bound: {exc.strerror}"
            raise InvalidInputError(f"{args.host}:{args.port} {reason}.") from exc


def _served_name(args: argparse.Namespace, model: str) -> str:
    if args.served_model_name:
        return args.served_model_name
    path = Path(model).expanduser()
    return path.resolve().name if path.is_dir() else model


def run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    import torch

    # The engine's thread runs every model operation with these threads; this thread (loading,
    # the event loop) keeps one, so OpenMP keeps a single team awake (see QueryEngine's threads).
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(1)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    url = args.url or (None if args.path else os.environ.get("QDRANT_URL") or None)
    qdrant_key = args.qdrant_api_key or os.environ.get("QDRANT_API_KEY") or None
    recorded = None
    if args.path or url:
        from search_r3.store import collection_model, open_client

        client = open_client(args.path, url, qdrant_key, backend=args.backend)  # fails early if locked
        try:
            recorded = (
                None
                if args.model or os.environ.get("SEARCH_R3_MODEL")
                else collection_model(client, args.collection)
            )
        finally:
            client.close()
    if args.host not in LOOPBACK and api_key is None:
        note(args, f"warning: listening on {args.host} without --api-key: anyone who can reach it may use it")

    from search_r3.query_cache import QueryCache
    from search_r3.server import ServerConfig, build_service, make_server

    model = resolve_model(args, recorded)
    config = ServerConfig(
        model_name=_served_name(args, model),
        api_key=api_key,
        default_input_type=args.default_input_type,
        max_inputs=args.max_inputs,
        max_input_chars=args.max_input_chars,
        max_total_chars=args.max_total_chars,
        max_reasoning_tokens=args.reasoning_limit,
        max_pending_queries=args.max_pending,
        drain_timeout=args.drain_timeout,
    )
    cache = QueryCache(args.cache_size, path=args.cache_path) if args.cache_size else None
    embeddings = load_model(args, recorded)
    store = None
    if args.path or url:
        from search_r3.store import QdrantStore

        store = QdrantStore(
            embeddings, args.collection, path=args.path, url=url, api_key=qdrant_key, backend=args.backend
        )
        note(args, f"search over collection {args.collection!r} ({store.count()} documents)")
    service = build_service(
        embeddings,
        config,
        store=store,
        cache=cache,
        max_batch_size=args.max_batch_size,
        threads=threads,
        workers=args.decode_workers,
    )
    server = make_server(service, config, host=args.host, port=args.port, log_level=args.log_level)
    host = f"[{args.host}]" if ":" in args.host else args.host
    note(args, f"serving {config.model_name!r} at http://{host}:{args.port}/v1 (Ctrl-C drains and stops)")
    server.run()
    return 0
