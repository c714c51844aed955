"""qdrant-client backends: a Qdrant server or cluster (``url``), ``:memory:``, and local-mode folders.

Local mode is qdrant-client's pure-Python engine (exact search in NumPy over points kept in a
SQLite file); search-r3 keeps opening folders made with it, and `search_r3.store_backends.edge`
is the default for new folders.
"""

from __future__ import annotations

import errno
import sqlite3
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_r3.store_backends.errors import StoreError, StoreLockedError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient


def open_server(url: str, api_key: str | None = None) -> QdrantClient:
    """A client of the Qdrant server at ``url``, once it answered (else a one-line `StoreError`)."""
    from qdrant_client import QdrantClient

    with warnings.catch_warnings():  # an unreachable server: _reachable says it in one line
        warnings.filterwarnings("ignore", message="Failed to obtain server version")
        client = QdrantClient(url=url, api_key=api_key)
    return _reachable(client, url)


def open_memory() -> QdrantClient:
    """An in-process store that lives as long as the client (qdrant-client's ``:memory:``)."""
    from qdrant_client import QdrantClient

    return QdrantClient(location=":memory:")


def open_local_folder(folder: Path) -> QdrantClient:
    """qdrant-client's local mode on ``folder`` (one client per folder)."""
    from qdrant_client import QdrantClient

    try:
        folder.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(folder))
    except (OSError, sqlite3.OperationalError) as exc:
        if not is_read_only(exc):
            raise
        raise read_only_error(folder, exc) from exc
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise
        raise StoreLockedError(
            f"The store folder {folder} is already open in another process (or another client in "
            "this one). Qdrant's local mode allows one client per folder at a time. Close the other "
            "program, use a different --path, or run a Qdrant server (e.g. `docker run -p 6333:6333 "
            "qdrant/qdrant`) and connect to it with --url / QDRANT_URL so several processes can share it."
        ) from exc


def _reachable(client: QdrantClient, url: str) -> QdrantClient:
    """``client`` once a first request answered; a server that cannot be reached is a clear error."""
    try:
        client.get_collections()
    except Exception as exc:  # connection refused, DNS, TLS, timeout, 401...: all one message
        client.close()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"Could not reach the Qdrant server at {url} ({reason}). Start it (e.g. `docker run -p "
            "6333:6333 qdrant/qdrant`), fix --url / QDRANT_URL (and --api-key), or leave them out "
            "to use the local store."
        ) from exc
    return client


def is_read_only(exc: Exception) -> bool:
    """Whether an error means the store folder (or its database) cannot be written."""
    if isinstance(exc, sqlite3.OperationalError):
        return "readonly" in str(exc) or "read-only" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def read_only_error(folder: Path, exc: Exception) -> StoreError:
    return StoreError(
        f"Cannot write to the store folder {folder} ({exc}); the store writes a lock file even to "
        "search. Make it writable, or pick another folder with --path (or $SEARCH_R3_STORE)."
    )


def is_local_mode_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a qdrant-client local-mode store (its ``meta.json``)."""
    return (folder / "meta.json").is_file()


def client_backend(client: Any) -> str:
    """``"memory"``, ``"local"`` or ``"server"`` for a ``QdrantClient``."""
    options = getattr(client, "init_options", {}) or {}
    if options.get("location") == ":memory:":
        return "memory"
    if options.get("path") is not None:
        return "local"
    return "server"
