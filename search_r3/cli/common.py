"""Options and helpers shared by the ``index``, ``search``, ``eval`` and ``demo`` commands.

Every command takes the same model options (``--model`` / ``$SEARCH_R3_MODEL``, ``--device``)
and store options (``--path``, ``--url``, ``--api-key``, ``--collection``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from search_r3.errors import InvalidInputError, ModelLoadError

MODEL_ENV = "SEARCH_R3_MODEL"

STORE_HELP = """store:
  Default: the embedded Qdrant engine in a folder under your user data directory
  ($SEARCH_R3_STORE overrides it). --path DIR picks another folder (only one process may
  open a folder at a time); a folder made with qdrant-client's local mode keeps using it
  (--backend edge|local picks one). --url (or $QDRANT_URL, with $QDRANT_API_KEY) uses a
  Qdrant server or cluster.
"""


# -- argument validators (argparse ``type=`` functions) ----------------------------------------
# Every check that needs no model runs here, while argparse parses, so a wrong value fails at
# once with the subcommand's usage instead of after a 5-10 s model load.


def positive_int(value: str) -> int:
    """An integer >= 1 (counts, depths, lengths)."""
    number = _int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number >= 1")
    return number


def non_negative_int(value: str) -> int:
    """An integer >= 0 (budgets, sizes where 0 means off)."""
    number = _int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number >= 0")
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def device_name(value: str) -> str:
    """A torch device this machine has: cpu, cuda, cuda:1, mps..."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown device {value!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{value!r}: this machine has no CUDA GPU; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{value!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise argparse.ArgumentTypeError(f"{value!r}: Apple MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps", "xpu", "npu", "hpu"):
        raise argparse.ArgumentTypeError(f"unsupported device {value!r}; use cpu, cuda, cuda:N or mps")
    return value


def dtype_name(value: str) -> str:
    """A dtype name that ``search_r3.devices.resolve_dtype`` accepts."""
    from search_r3.devices import DTYPE_NAMES

    if value.lower() not in (*DTYPE_NAMES, "auto"):
        raise argparse.ArgumentTypeError(
            f"unknown dtype {value!r}; use one of {', '.join(DTYPE_NAMES)} or auto"
        )
    return value.lower()


def query_text(value: str) -> str:
    """A query: non-blank text, or ``-`` for standard input (read later, once)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a query is empty; pass some text (or - to read it from stdin)")
    return value


def metric_name(value: str) -> str:
    """An ir-measures metric name (nDCG@10, R@100, RR@10, AP, P@5...)."""
    import ir_measures

    try:
        ir_measures.parse_measure(value)
    except (ValueError, NameError, TypeError, SyntaxError):
        raise argparse.ArgumentTypeError(
            f"unknown metric {value!r}; use ir-measures names such as nDCG@10, R@100, RR@10, AP, P@5"
        ) from None
    return value


def output_file(value: str) -> Path:
    """A file to write: its folder must exist and it must not be a folder itself."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a folder; pass a file name inside it")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"the folder of {value!r} does not exist; create {str(parent)!r} first"
        )
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {str(parent)!r}; pick a writable folder")
    return path


def output_folder(value: str) -> Path:
    """A folder to write a model into: missing or a folder, never an existing file."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a file; pass a folder (it is created if missing)")
    return path


def store_path(value: str) -> str:
    """A local store folder or ``:memory:``; never empty (that would be the current folder)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the store path is empty; pass a folder or :memory:")
    path = Path(value).expanduser()
    if value != ":memory:" and path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a file; the store path must be a folder")
    return value


def check_store_choice(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--path (local) and --url (server) exclude each other; --backend is for a folder."""
    if getattr(args, "path", None) is not None and getattr(args, "url", None):
        parser.error("give --path (a local store) or --url (a Qdrant server), not both")
    if getattr(args, "backend", None) and getattr(args, "url", None):
        parser.error("--backend picks the engine of a local folder; drop it with --url")
    if getattr(args, "backend", None) == "edge" and getattr(args, "path", None) == ":memory:":
        parser.error("--backend edge stores in a folder; give --path DIR instead of :memory:")


def existing_folder(value: str) -> Path:
    """A folder to read."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a folder" if path.exists() else f"no folder {value!r}"
        )
    return path


def existing_file(value: str) -> Path:
    """A file to read."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no file {value!r}")
    return path


def read_stdin_queries(queries: list[str]) -> list[str]:
    """Replace each ``-`` with the text read from standard input (read once, stripped)."""
    if "-" not in queries:
        return queries
    if queries.count("-") > 1:
        raise InvalidInputError("Give - (read the query from stdin) at most once.")
    text = sys.stdin.read().strip()
    if not text:
        raise InvalidInputError(
            "The query read from stdin is empty; pipe some text in (echo why | search-r3 search -)."
        )
    return [text if q == "-" else q for q in queries]


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
    group.add_argument(
        "--device", type=device_name, default=None, help="cpu, cuda, mps... (default: the best available)"
    )
    group.add_argument(
        "--dtype", type=dtype_name, default=None, help="float32, bfloat16, float16 (default: per device)"
    )
    if reasoning:
        group.add_argument(
            "--max-reasoning-tokens",
            type=non_negative_int,
            default=None,
            help="reasoning budget (default: the model's)",
        )
    return group


def add_store_options(parser: argparse.ArgumentParser, *, collection: str = "search_r3") -> None:
    group = parser.add_argument_group("store")
    group.add_argument(
        "--path", type=store_path, default=None, help="local store folder, or :memory: (default: see below)"
    )
    group.add_argument("--url", default=None, help="Qdrant server URL (default: $QDRANT_URL if set)")
    group.add_argument("--api-key", default=None, help="Qdrant server API key (default: $QDRANT_API_KEY)")
    group.add_argument("--collection", default=collection, help=f"collection name (default: {collection})")
    group.add_argument(
        "--backend",
        choices=("edge", "local"),
        default=None,
        help="engine of a local folder: edge (embedded Qdrant engine) or local (qdrant-client's local "
        "mode); default: the one that made the folder, edge for a new one",
    )


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
    if getattr(args, "max_reasoning_tokens", None) is not None:
        kwargs["max_reasoning_tokens"] = args.max_reasoning_tokens
    return ReasoningEmbeddings.from_pretrained(name, device=args.device, dtype=args.dtype, **kwargs)


def recorded_model(args: argparse.Namespace) -> str | None:
    """The model a collection was indexed with (read from the store, which is closed again)."""
    from search_r3.store import collection_model

    if args.model or os.environ.get(MODEL_ENV):
        return None
    client = store_client(args)
    try:
        return collection_model(client, args.collection)
    finally:
        client.close()


def check_collection(args: argparse.Namespace) -> str | None:
    """Before any model loads: the collection must exist and hold documents.

    Returns the model the collection was indexed with when no model was given (else ``None``).

    Raises:
        StoreError: No such collection, an empty one, or an unreachable server.
    """
    from search_r3.store import collection_model, require_collection

    client = store_client(args)
    try:
        require_collection(client, args.collection, non_empty=True)
        if args.model or os.environ.get(MODEL_ENV):
            return None
        return collection_model(client, args.collection)
    finally:
        client.close()


def store_client(args: argparse.Namespace) -> Any:
    """A client of the store the options name (--path / --url / --api-key / --backend)."""
    from search_r3.store import open_client

    return open_client(args.path, args.url, args.api_key, backend=getattr(args, "backend", None))


def open_store(args: argparse.Namespace, embeddings: Any) -> Any:
    from search_r3.store import QdrantStore

    return QdrantStore(
        embeddings,
        args.collection,
        path=args.path,
        url=args.url,
        api_key=args.api_key,
        backend=getattr(args, "backend", None),
    )


def note(args: argparse.Namespace, message: str) -> None:
    """A progress note on stderr (kept out of stdout, so --json output stays clean); none with --quiet."""
    if not getattr(args, "quiet", False):
        print(f"search-r3: {message}", file=sys.stderr, flush=True)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars unless --quiet."""
    return not getattr(args, "quiet", False)


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
