"""Where a `search_r3.store.QdrantStore` keeps its points: the engines behind one client interface.

* ``edge``: Qdrant's own engine embedded in the process (qdrant-edge: segments, write-ahead
  log, HNSW, payload indexes), in a folder. The default for a new folder.
* ``local``: qdrant-client's local mode in a folder (exact search in NumPy, for small
  collections). Folders made by earlier search-r3 versions keep opening with it.
* ``memory``: qdrant-client's ``:memory:`` (nothing written to disk).
* ``server``: a Qdrant server or cluster at a URL.

Every engine answers the same subset of ``qdrant_client.QdrantClient`` calls (`StoreClient`), with
``qdrant_client.models`` objects in and out.

Example:
    ```python
    from search_r3.store_backends import open_store_client, backend_name

    client = open_store_client("./store")          # a new folder: the embedded engine
    print(backend_name(client))                    # edge
    client.close()
    ```
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from search_r3.store_backends.client import (
    client_backend,
    is_local_mode_folder,
    open_local_folder,
    open_memory,
    open_server,
)
from search_r3.store_backends.edge import EdgeClient, is_edge_store
from search_r3.store_backends.errors import StoreError, StoreLockedError, StoreOptionsError

logger = logging.getLogger(__name__)

#: Engines a folder can be opened with (``backend=`` / ``--backend``).
FOLDER_BACKENDS = ("edge", "local")

#: The engine of a new folder.
DEFAULT_FOLDER_BACKEND = "edge"

__all__ = [
    "DEFAULT_FOLDER_BACKEND",
    "FOLDER_BACKENDS",
    "EdgeClient",
    "StoreClient",
    "StoreError",
    "StoreLockedError",
    "StoreOptionsError",
    "backend_name",
    "folder_backend",
    "open_store_client",
    "optimize_collection",
]


@runtime_checkable
class StoreClient(Protocol):
    """The calls `QdrantStore` (and the CLI) make on a store, as qdrant-client names them."""

    def collection_exists(self, collection_name: str) -> bool: ...
    def get_collections(self) -> Any: ...
    def create_collection(self, collection_name: str, *args: Any, **kwargs: Any) -> Any: ...
    def get_collection(self, collection_name: str) -> Any: ...
    def delete_collection(self, collection_name: str, **kwargs: Any) -> Any: ...
    def upsert(self, collection_name: str, points: Any, **kwargs: Any) -> Any: ...
    def retrieve(self, collection_name: str, ids: Any, **kwargs: Any) -> Any: ...
    def scroll(self, collection_name: str, **kwargs: Any) -> Any: ...
    def delete(self, collection_name: str, points_selector: Any, **kwargs: Any) -> Any: ...
    def count(self, collection_name: str, **kwargs: Any) -> Any: ...
    def query_points(self, collection_name: str, **kwargs: Any) -> Any: ...
    def close(self, **kwargs: Any) -> None: ...


def folder_backend(folder: Path) -> str | None:
    """The engine whose store ``folder`` holds: ``"edge"``, ``"local"``, or ``None`` (new or empty)."""
    if is_edge_store(folder):
        return "edge"
    if is_local_mode_folder(folder):
        return "local"
    return None


def open_store_client(
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    *,
    backend: str | None = None,
    default_folder: Path | None = None,
) -> Any:
    """A client for the store given by ``path`` / ``url`` (see `search_r3.store.open_client`).

    Args:
        path: A folder, or ``":memory:"``.
        url, api_key: A Qdrant server or cluster.
        backend: ``"edge"`` or ``"local"`` to force the engine of a folder (default: the one that
            made the folder; the embedded engine for a new one).
        default_folder: The folder used when neither ``path`` nor ``url`` is given.
    """
    if backend is not None and backend not in FOLDER_BACKENDS:
        raise StoreOptionsError(
            f"backend must be one of {', '.join(FOLDER_BACKENDS)} (for a folder), not {backend!r}; a "
            "server is chosen with url= (--url)."
        )
    if path is not None and not str(path).strip():
        raise StoreOptionsError(
            "The store path is empty (it would write into the current folder); give a folder, "
            "e.g. --path ./store, or leave --path out for the default store."
        )
    if url is None and path is None:
        url = os.environ.get("QDRANT_URL") or None
        if url and api_key is None:
            api_key = os.environ.get("QDRANT_API_KEY") or None
    if url is not None:
        if path is not None:
            raise StoreOptionsError(
                "Give either path (a local store) or url (a server), not both: drop --path or --url."
            )
        if backend is not None:
            raise StoreOptionsError(
                f"backend={backend!r} picks the engine of a local folder; a server (url) has its own."
            )
        return open_server(url, api_key)
    if str(path) == ":memory:":
        if backend == "edge":
            raise StoreOptionsError(
                "The embedded engine stores in a folder; give --path DIR (or a temporary folder) "
                "instead of :memory:."
            )
        return open_memory()
    if path is None and default_folder is None:
        raise StoreOptionsError("Give a store folder (path), a server URL (url) or ':memory:'.")
    folder = Path(path).expanduser() if path is not None else Path(default_folder)  # type: ignore[arg-type]
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{folder} is a file; the store path must be a folder (it is created if missing).")
    found = folder_backend(folder)
    chosen = backend or found or DEFAULT_FOLDER_BACKEND
    if found is not None and chosen != found:
        raise StoreOptionsError(
            f"The store folder {folder} holds a {_ENGINE_NAMES[found]} store, not {_ENGINE_NAMES[chosen]}; "
            f"drop --backend {chosen}, or copy it: search-r3 store migrate {folder} NEW_FOLDER "
            f"--dst-backend {chosen}."
        )
    if chosen == "local":
        if found == "local" and backend is None:
            logger.warning(
                "The store folder %s uses qdrant-client's local mode (exact search, slow past 20,000 "
                "points); `search-r3 store migrate %s NEW_FOLDER` copies it to the embedded Qdrant engine.",
                folder,
                folder,
            )
        return open_local_folder(folder)
    return _open_edge(folder)


_ENGINE_NAMES = {"edge": "embedded-engine (qdrant-edge)", "local": "qdrant-client local-mode"}


def _open_edge(folder: Path) -> EdgeClient:
    from search_r3.store_backends.client import is_read_only, read_only_error

    try:
        return EdgeClient(folder)
    except OSError as exc:
        if not is_read_only(exc):
            raise
        raise read_only_error(folder, exc) from exc


def backend_name(client: Any) -> str:
    """``"edge"``, ``"local"``, ``"memory"`` or ``"server"``: the engine behind a client."""
    engine = getattr(client, "engine", None)
    if isinstance(engine, str):
        return engine
    return client_backend(client)


def optimize_collection(
    client: Any, collection_name: str, *, threshold: int | None = None, show_progress: bool = False
) -> bool:
    """Build the search index of an embedded collection when enough points wait for it.

    Returns whether an index build ran. A server builds its index by itself and local mode has
    none, so for them this does nothing.

    Args:
        threshold: Build only when at least this many vectors are not indexed yet (``None``:
            `search_r3.store_backends.tuning.OPTIMIZE_THRESHOLD`; ``0``: always).
        show_progress: Print a progress line (on stderr) while the index is built.
    """
    from search_r3.store_backends import tuning

    if not hasattr(client, "optimize"):
        return False
    limit = tuning.OPTIMIZE_THRESHOLD if threshold is None else threshold
    waiting = client.unindexed_count(collection_name)
    if waiting == 0 or waiting < limit:
        return False
    from tqdm.auto import tqdm

    with tqdm(
        total=1,
        desc=f"Building the search index ({waiting:,} vectors)",
        unit="index",
        disable=not show_progress,
        bar_format="{desc}: {elapsed}",
    ) as bar:
        client.optimize(collection_name)
        bar.update(1)
    logger.info("Built the search index of %r (%d vectors were not indexed).", collection_name, waiting)
    return True
