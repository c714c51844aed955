"""The embedded Qdrant engine (qdrant-edge) behind the qdrant-client calls the store makes.

A store folder holds one qdrant-edge shard per collection (segments, write-ahead log, HNSW
graphs, payload indexes) and a small JSON file per collection with what qdrant-edge does not
keep: the vector layout as the store created it and the collection's metadata (the model that
made the vectors, the BM25 settings). Layout::

    FOLDER/search_r3_store.json            {"engine": "qdrant-edge", "format": 1}
    FOLDER/edge.lock                       held (flock) while a client has the folder open
    FOLDER/collections/NAME/collection.json
    FOLDER/collections/NAME/shard/         the qdrant-edge shard

`EdgeClient` answers the subset of ``qdrant_client.QdrantClient`` that search-r3 uses
(``create_collection``, ``upsert``, ``retrieve``, ``scroll``, ``delete``, ``count``,
``query_points``...), taking and returning ``qdrant_client.models`` objects, so the store, the CLI
and tools written against qdrant-client work on either engine. Every write goes to the shard's
write-ahead log before the call returns, so a write the store reported survives the process
being killed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from search_r3.store_backends import tuning
from search_r3.store_backends.edge_models import (
    client_record,
    completed,
    dense_layout,
    edge_filter,
    edge_params,
    edge_point_id,
    edge_prefetch,
    edge_query,
    edge_vectors,
    schema_type,
    sparse_layout,
)
from search_r3.store_backends.errors import StoreError, StoreLockedError

#: File that marks a folder as a qdrant-edge store.
MARKER_FILE = "search_r3_store.json"
ENGINE_NAME = "qdrant-edge"
FORMAT_VERSION = 1
LOCK_FILE = "edge.lock"
COLLECTIONS_DIR = "collections"
COLLECTION_FILE = "collection.json"
SHARD_DIR = "shard"

_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,254}$")


def is_edge_store(folder: Path) -> bool:
    """Whether ``folder`` holds a qdrant-edge store made by search-r3."""
    return (folder / MARKER_FILE).is_file()


class EdgeClient:
    """A folder of qdrant-edge collections, used through qdrant-client's method names and models.

    Example:
        ```python
        from qdrant_client import models

        client = EdgeClient("./store")
        client.create_collection("notes", vectors_config=models.VectorParams(size=4, distance="Cosine"))
        client.upsert("notes", [models.PointStruct(id=1, vector=[1.0, 0, 0, 0], payload={"a": 1})])
        print(client.query_points("notes", query=[1.0, 0, 0, 0], limit=1).points)
        client.close()
        ```
    """

    engine = "edge"

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.init_options: dict[str, Any] = {"path": str(self.folder)}
        self._shards: dict[str, Any] = {}
        self._lock_file: Any = None
        self._closed = False
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock()
        marker = self.folder / MARKER_FILE
        if not marker.is_file():
            _write_json(marker, {"engine": ENGINE_NAME, "format": FORMAT_VERSION})

    # -- folder lock ------------------------------------------------------------------------
    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: qdrant-edge's own WAL lock refuses a second opener
            return
        handle = open(self.folder / LOCK_FILE, "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreLockedError(locked_message(self.folder)) from None
        self._lock_file = handle

    # -- collections --------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
            raise StoreError(
                f"Collection name {name!r} cannot be stored in a folder: use letters, digits, '_', '-' "
                "and '.' (not first)."
            )
        return self.folder / COLLECTIONS_DIR / name

    def collection_exists(self, collection_name: str) -> bool:
        return (self._dir(collection_name) / COLLECTION_FILE).is_file()

    def get_collections(self) -> Any:
        root = self.folder / COLLECTIONS_DIR
        names = sorted(p.parent.name for p in root.glob(f"*/{COLLECTION_FILE}")) if root.is_dir() else []
        return SimpleNamespace(collections=[SimpleNamespace(name=n) for n in names])

    def create_collection(
        self,
        collection_name: str,
        vectors_config: Any = None,
        sparse_vectors_config: Any = None,
        metadata: dict[str, Any] | None = None,
        **_: Any,
    ) -> bool:
        """Create a collection (dense vectors: one ``VectorParams`` or a dict by name; sparse: a dict)."""
        import qdrant_edge as qe

        if self.collection_exists(collection_name):
            raise StoreError(f"Collection {collection_name!r} already exists.")
        dense = dense_layout(vectors_config)
        sparse = sparse_layout(sparse_vectors_config)
        folder = self._dir(collection_name)
        if folder.exists():  # a creation cut short before its description was written
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

        def vector_params(spec: dict[str, Any]) -> Any:
            return qe.EdgeVectorParams(spec["size"], distance=getattr(qe.Distance, spec["distance"]))

        vectors: Any = (
            vector_params(dense[""])
            if list(dense) == [""]
            else {name: vector_params(spec) for name, spec in dense.items()}
        )
        sparse_params = {
            name: qe.EdgeSparseVectorParams(
                modifier=qe.Modifier.Idf if spec.get("modifier") == "idf" else None
            )
            for name, spec in sparse.items()
        }
        quantization = (
            qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
            if tuning.QUANTIZATION
            else None
        )
        config = qe.EdgeConfig(
            vectors=vectors if dense else None,
            sparse_vectors=sparse_params or None,
            hnsw_config=qe.HnswIndexConfig(
                m=tuning.HNSW_M,
                ef_construct=tuning.HNSW_EF_CONSTRUCT,
                full_scan_threshold=tuning.HNSW_FULL_SCAN_THRESHOLD_KB,
                max_indexing_threads=tuning.INDEXING_THREADS,
            ),
            quantization_config=quantization,
            # optimize() indexes whatever waits: when it runs is the store's choice (OPTIMIZE_THRESHOLD)
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=tuning.INDEXING_THRESHOLD_KB),
        )
        shard = qe.EdgeShard.create(str(folder / SHARD_DIR), config)
        self._shards[collection_name] = shard
        description = {"format": FORMAT_VERSION, "vectors": dense, "sparse_vectors": sparse}
        _write_json(folder / COLLECTION_FILE, {**description, "metadata": metadata or {}})
        return True

    def delete_collection(self, collection_name: str, **_: Any) -> bool:
        shard = self._shards.pop(collection_name, None)
        if shard is not None:
            shard.close()
        folder = self._dir(collection_name)
        if not folder.exists():
            return False
        (folder / COLLECTION_FILE).unlink(missing_ok=True)  # gone first: a cut-short delete reads as gone
        shutil.rmtree(folder)
        return True

    def _description(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / COLLECTION_FILE
        if not path.is_file():
            raise StoreError(f"No collection {name!r} in the store folder {self.folder}.")
        return json.loads(path.read_text(encoding="utf-8"))

    def get_collection(self, collection_name: str) -> Any:
        """The collection's layout and counts, shaped like qdrant-client's ``CollectionInfo``."""
        from qdrant_client import models

        description = self._description(collection_name)
        dense = {
            name: models.VectorParams(size=spec["size"], distance=models.Distance(spec["distance"]))
            for name, spec in description.get("vectors", {}).items()
        }
        sparse = {
            name: models.SparseVectorParams(
                modifier=models.Modifier.IDF if spec.get("modifier") == "idf" else None
            )
            for name, spec in description.get("sparse_vectors", {}).items()
        }
        info = self._shard(collection_name).info()
        params = models.CollectionParams.model_construct(
            vectors=dense[""] if list(dense) == [""] else dense, sparse_vectors=sparse or None
        )
        config = models.CollectionConfig.model_construct(
            params=params,
            hnsw_config=models.HnswConfig.model_construct(
                m=tuning.HNSW_M,
                ef_construct=tuning.HNSW_EF_CONSTRUCT,
                full_scan_threshold=tuning.HNSW_FULL_SCAN_THRESHOLD_KB,
            ),
            metadata=description.get("metadata") or {},
        )
        return models.CollectionInfo.model_construct(
            status=models.CollectionStatus.GREEN,
            points_count=info.points_count,
            indexed_vectors_count=info.indexed_vectors_count,
            segments_count=info.segments_count,
            config=config,
            payload_schema={
                key: models.PayloadIndexInfo.model_construct(
                    data_type=schema_type(index.data_type), points=int(index.points)
                )
                for key, index in info.payload_schema.items()
            },
        )

    def _shard(self, name: str) -> Any:
        if self._closed:
            raise StoreError("This store client is closed; open the store again.")
        shard = self._shards.get(name)
        if shard is None:
            import qdrant_edge as qe

            self._description(name)  # a clear error for a missing collection
            try:
                shard = qe.EdgeShard.load(str(self._dir(name) / SHARD_DIR))
            except Exception as exc:
                if "WouldBlock" in str(exc):
                    raise StoreLockedError(locked_message(self.folder)) from exc
                raise StoreError(
                    f"Could not open collection {name!r} in {self.folder} ({_first_line(exc)}); the "
                    "folder may be damaged: restore it from a copy or index the documents again."
                ) from exc
            self._shards[name] = shard
        return shard

    # -- writing ------------------------------------------------------------------------------
    def upsert(self, collection_name: str, points: Sequence[Any], wait: bool = True, **_: Any) -> Any:
        """Insert or replace points (``PointStruct`` objects); on the write-ahead log when it returns."""
        import qdrant_edge as qe

        converted = [qe.Point(edge_point_id(p.id), edge_vectors(p.vector), p.payload or {}) for p in points]
        if converted:
            self._shard(collection_name).update(qe.UpdateOperation.upsert_points(converted))
        return completed()

    def delete(self, collection_name: str, points_selector: Any, wait: bool = True, **_: Any) -> Any:
        """Delete points by ids (``PointIdsList`` or a list) or by filter (``FilterSelector``/``Filter``)."""
        import qdrant_edge as qe
        from qdrant_client import models

        shard = self._shard(collection_name)
        if isinstance(points_selector, models.PointIdsList):
            ids = [edge_point_id(i) for i in points_selector.points]
            if ids:
                shard.update(qe.UpdateOperation.delete_points(ids))
        elif isinstance(points_selector, (models.FilterSelector, models.Filter)):
            selected = (
                points_selector.filter
                if isinstance(points_selector, models.FilterSelector)
                else points_selector
            )
            shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(selected)))
        elif isinstance(points_selector, (list, tuple)):
            if points_selector:
                shard.update(qe.UpdateOperation.delete_points([edge_point_id(i) for i in points_selector]))
        else:
            raise StoreError(f"Unsupported points selector {type(points_selector).__name__}.")
        return completed()

    def create_payload_index(self, collection_name: str, field_name: str, field_schema: Any, **_: Any) -> Any:
        """Index a payload field (keyword, integer, float, bool, uuid, datetime, text)."""
        import qdrant_edge as qe

        kind = str(getattr(field_schema, "value", field_schema)).lower()
        names = {
            n.lower(): getattr(qe.PayloadSchemaType, n) for n in dir(qe.PayloadSchemaType) if n[:1].isupper()
        }
        if kind not in names:
            raise StoreError(
                f"Unsupported payload index type {kind!r}; use one of {', '.join(sorted(names))}."
            )
        self._shard(collection_name).update(qe.UpdateOperation.create_field_index(field_name, names[kind]))
        return completed()

    # -- reading ------------------------------------------------------------------------------
    def retrieve(
        self,
        collection_name: str,
        ids: Sequence[Any],
        with_payload: Any = True,
        with_vectors: Any = False,
        **_: Any,
    ) -> list[Any]:
        from qdrant_client import models

        if not ids:
            return []
        found = self._shard(collection_name).retrieve(
            [edge_point_id(i) for i in ids], with_payload=with_payload, with_vector=with_vectors
        )
        return [client_record(r, models.Record) for r in found]

    def scroll(
        self,
        collection_name: str,
        scroll_filter: Any = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: Any = True,
        with_vectors: Any = False,
        **_: Any,
    ) -> tuple[list[Any], Any]:
        import qdrant_edge as qe
        from qdrant_client import models

        records, next_offset = self._shard(collection_name).scroll(
            qe.ScrollRequest(
                offset=None if offset is None else edge_point_id(offset),
                limit=limit,
                filter=edge_filter(scroll_filter),
                with_payload=with_payload,
                with_vector=with_vectors,
            )
        )
        following = next_offset if next_offset is None or isinstance(next_offset, int) else str(next_offset)
        return [client_record(r, models.Record) for r in records], following

    def count(self, collection_name: str, count_filter: Any = None, exact: bool = True, **_: Any) -> Any:
        import qdrant_edge as qe
        from qdrant_client import models

        total = self._shard(collection_name).count(
            qe.CountRequest(exact=True, filter=edge_filter(count_filter))
        )
        return models.CountResult(count=int(total))

    def query_points(
        self,
        collection_name: str,
        query: Any = None,
        using: str | None = None,
        prefetch: Any = None,
        query_filter: Any = None,
        search_params: Any = None,
        limit: int = 10,
        offset: int | None = None,
        with_payload: Any = True,
        with_vectors: Any = False,
        score_threshold: float | None = None,
        **_: Any,
    ) -> Any:
        """One Query API call: a nearest-neighbour query, or prefetches fused by RRF / DBSF."""
        import qdrant_edge as qe
        from qdrant_client import models
        from qdrant_client.http import models as http_models

        prefetches = prefetch if isinstance(prefetch, list) else ([prefetch] if prefetch is not None else [])
        request = qe.QueryRequest(
            limit=limit,
            offset=offset,
            query=edge_query(query, using),
            prefetches=[edge_prefetch(p) for p in prefetches] or None,
            filter=edge_filter(query_filter),
            params=edge_params(search_params),
            with_payload=with_payload,
            with_vector=with_vectors,
            score_threshold=score_threshold,
        )
        points = self._shard(collection_name).query(request)
        return http_models.QueryResponse.model_construct(
            points=[client_record(p, models.ScoredPoint) for p in points]
        )

    # -- index building and lifetime ------------------------------------------------------------
    def unindexed_count(self, collection_name: str) -> int:
        """About how many vectors are not in an index yet (searched exactly until `optimize` runs).

        Sparse vectors are indexed as they are written; dense ones wait for an HNSW build. The
        count comes from the shard's totals, so replaced points still counted there make it err low.
        """
        info = self._shard(collection_name).info()
        description = self._description(collection_name)
        per_point = len(description.get("vectors", {})) + len(description.get("sparse_vectors", {}))
        return max(0, int(info.points_count) * max(per_point, 1) - int(info.indexed_vectors_count))

    def optimize(self, collection_name: str) -> bool:
        """Merge segments and build the HNSW graphs (blocks until done); whether anything changed."""
        return bool(self._shard(collection_name).optimize())

    def flush(self) -> None:
        for shard in self._shards.values():
            shard.flush()

    def close(self, **_: Any) -> None:
        if self._closed:
            return
        self._closed = True
        for shard in self._shards.values():
            try:
                shard.flush()
            finally:
                shard.close()
        self._shards.clear()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            if self._lock_file is not None:
                self._lock_file.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"EdgeClient({str(self.folder)!r})"


def locked_message(folder: Path) -> str:
    return (
        f"The store folder {folder} is already open in another process (or another client in this "
        "one); an embedded store allows one client per folder at a time. Close the other program, "
        "use a different --path, or run a Qdrant server (e.g. `docker run -p 6333:6333 "
        "qdrant/qdrant`) and connect to it with --url / QDRANT_URL so several processes can share it."
    )


def _write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a temporary file renamed over the target, fsynced)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
