"""Options and helpers shared by the ``index``, ``search``, ``eval`` and ``demo`` commands.

Every command takes the same model options (``--model`` / ``$SEARCH_R3_MODEL``, ``--device``)
and store options (``--path``, ``--url``, ``--api-key``, ``--collection``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from search_r3.errors import ModelLoadError

MODEL_ENV = "SEARCH_R3_MODEL"

STORE_HELP = """store:
  Default: Qdrant's embedded local mode in a folder under your user data directory
  ($SEARCH_R3_STORE overrides it). --path DIR picks another folder (only one process may
  open a folder at a time); --url (or $QDRANT_URL, with $QDRANT_API_KEY) uses a Qdrant server.
"""


def add_model_options(
    parser: argparse.ArgumentParser, *, reasoning: bool = True, repeat: bool = False
) -> argparse._ArgumentGroup:
    """The "model" option group; with ``repeat`` ``--model`` may be given several times (a list)."""
    group = parser.add_argument_group("model")
    if repeat:
        group.add_argument(
            "--model",
            action="append",
            default=None,
            metavar="[LABEL=]MODEL",
            help=f"search-r3 model folder, short name or Hub id; repeat to compare models (default: "
            f"${MODEL_ENV}, else the demo model if it was built)",
        )
    else:
        group.add_argument(
            "--model",
            default=None,
            help=f"search-r3 model folder or Hub id (default: ${MODEL_ENV}, else the model the "
            "collection was indexed with, else the demo model if it was built)",
        )
    group.add_argument("--device", default=None, help="cpu, cuda, mps... (default: the best available)")
    group.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: per device)")
    if reasoning:
        group.add_argument(
            "--max-reasoning-tokens", type=int, default=None, help="reasoning budget (default: the model's)"
        )
    return group


def add_store_options(parser: argparse.ArgumentParser, *, collection: str = "search_r3") -> None:
    group = parser.add_argument_group("store")
    group.add_argument("--path", default=None, help="local store folder, or :memory: (default: see below)")
    group.add_argument("--url", default=None, help="Qdrant server URL (default: $QDRANT_URL if set)")
    group.add_argument("--api-key", default=None, help="Qdrant server API key (default: $QDRANT_API_KEY)")
    group.add_argument("--collection", default=collection, help=f"collection name (default: {collection})")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def resolve_model(args: argparse.Namespace, recorded: str | None = None) -> str:
    """The model to load: --model, $SEARCH_R3_MODEL, the collection's recorded model, the demo model."""
    from search_r3.demo import demo_model_path

    for candidate in (args.model, os.environ.get(MODEL_ENV), recorded):
        if candidate:
            return str(candidate)
    try:
        demo = demo_model_path(build=False)
    except ModelLoadError:  # the shipped adapter is missing: no demo model to fall back on
        demo = None
    if demo is not None and (demo / "config.json").is_file():
        return str(demo)
    raise ModelLoadError(
        "No model given. Pass --model PATH_OR_HUB_ID or set $SEARCH_R3_MODEL to a search-r3 model; "
        "make one with `search-r3 init smollm2-135m-instruct ./my-model`, or run `search-r3 demo` once "
        "to build the demo model."
    )


def load_model(args: argparse.Namespace, recorded: str | None = None) -> Any:
    """Load the model named by the options (with a short note on stderr, since it takes a while)."""
    from search_r3.model import ReasoningEmbeddings

    name = resolve_model(args, recorded)
    note(args, f"loading model {name}")
    kwargs: dict[str, Any] = {}
    if getattr(args, "max_reasoning_tokens", None):
        kwargs["max_reasoning_tokens"] = args.max_reasoning_tokens
    return ReasoningEmbeddings.from_pretrained(name, device=args.device, dtype=args.dtype, **kwargs)


def recorded_model(args: argparse.Namespace) -> str | None:
    """The model a collection was indexed with (read from the store, which is closed again)."""
    from search_r3.store import collection_model, open_client

    if args.model or os.environ.get(MODEL_ENV):
        return None
    client = open_client(args.path, args.url, args.api_key)
    try:
        return collection_model(client, args.collection)
    finally:
        client.close()


def open_store(args: argparse.Namespace, embeddings: Any) -> Any:
    from search_r3.store import QdrantStore

    return QdrantStore(embeddings, args.collection, path=args.path, url=args.url, api_key=args.api_key)


def note(args: argparse.Namespace, message: str) -> None:
    """A progress note on stderr (kept out of stdout, so --json output stays clean)."""
    print(f"search-r3: {message}", file=sys.stderr, flush=True)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def shorten(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def print_result(query: str, result: Any, *, width: int = 160) -> None:
    """The reasoning, then the ranked hits, as plain text."""
    print(f"query: {query}")
    if result.reasoning or result.forced:
        suffix = "  [budget ran out: embed token appended]" if result.forced else ""
        print(f"reasoning: {shorten(result.reasoning, 400) or '(none)'}{suffix}")
    if not result.hits:
        print("  (no hits: is the collection empty? index documents with `search-r3 index PATH`)")
    for rank, hit in enumerate(result.hits, 1):
        title = hit.metadata.get("title") or hit.metadata.get("source") or ""
        label = f"{hit.id}" + (f"  ({title})" if title and title not in hit.id else "")
        print(f"{rank:>3}. {hit.score:.4f}  {label}")
        print(f"       {shorten(hit.text, width)}")


def result_json(query: str, result: Any) -> dict[str, Any]:
    return {
        "query": query,
        "reasoning": result.reasoning,
        "forced": result.forced,
        "hits": [
            {"rank": i, "id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
            for i, h in enumerate(result.hits, 1)
        ],
    }
