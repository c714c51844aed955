"""A Qdrant vector store for search-r3: index documents, search with reasoning, filter on metadata.

Embedded local mode (a folder under the user's data directory, or ``":memory:"``) needs no
server; ``url`` / ``api_key`` (or ``QDRANT_URL`` / ``QDRANT_API_KEY``) talk to a Qdrant server
with the same API. The store creates its collection from the model's dimension, so it never
embeds a dummy text (with reasoning that would be a whole generation).
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from search_r3.errors import InvalidInputError, SearchR3Error

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.models import Filter

    from search_r3.model import ReasoningEmbeddings

logger = logging.getLogger(__name__)

#: qdrant-client's local mode warns above this many points; a server is the way past it.
LOCAL_MODE_COMFORT_LIMIT = 20_000

#: Namespace of the deterministic point ids (uuid5 of the document id).
POINT_NAMESPACE = uuid.UUID("6f1d5e0a-2c3b-5b7e-9a54-5e1c2a3b7d90")

TEXT_KEY = "text"
DOC_ID_KEY = "doc_id"
METADATA_KEY = "metadata"
METADATA_MODEL_KEY = "search_r3"


class StoreError(SearchR3Error):
    """Something about the vector store went wrong; the message names the fix."""


class StoreLockedError(StoreError, RuntimeError):
    """A local store folder is already opened by another client (process)."""


class CollectionMismatchError(StoreError, ValueError):
    """An existing collection's vector size or distance does not match the model."""


@dataclass
class Hit:
    """One search result: the document id, cosine score, text and metadata."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult:
    """Hits for a query, with the reasoning the model wrote before embedding it."""

    hits: list[Hit]
    reasoning: str = ""
    forced: bool = False

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)


def default_store_path() -> Path:
    """Default embedded store folder: ``$SEARCH_R3_STORE`` or ``<user data dir>/search-r3/qdrant``."""
    env = os.environ.get("SEARCH_R3_STORE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("search-r3")) / "qdrant"


def point_id(doc_id: str) -> str:
    """Deterministic Qdrant point id (a UUID) for a document id."""
    return str(uuid.uuid5(POINT_NAMESPACE, doc_id))


def content_id(text: str) -> str:
    """Document id derived from the text, for documents given without ids."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def open_client(
    path: str | os.PathLike[str] | None = None, url: str | None = None, api_key: str | None = None
) -> QdrantClient:
    """A Qdrant client: server when ``url`` (or ``QDRANT_URL``), else local mode at ``path``.

    ``path=":memory:"`` keeps everything in this process; ``path=None`` without a URL uses
    `default_store_path`. A local folder locked by another client raises
    `StoreLockedError`.
    """
    from qdrant_client import QdrantClient

    if url is None and path is None:
        url = os.environ.get("QDRANT_URL") or None
        if url and api_key is None:
            api_key = os.environ.get("QDRANT_API_KEY") or None
    if url is not None:
        if path is not None:
            raise ValueError("Give either path (local mode) or url (server mode), not both.")
        return QdrantClient(url=url, api_key=api_key)
    if str(path) == ":memory:":
        return QdrantClient(location=":memory:")
    folder = Path(path).expanduser() if path is not None else default_store_path()
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{folder} is a file; the store path must be a folder (it is created if missing).")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(folder))
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise
        raise StoreLockedError(
            f"The store folder {folder} is already open in another process (or another client in "
            "this one). Qdrant's local mode allows one client per folder at a time. Close the other "
            "program, use a different --path, or run a Qdrant server (e.g. `docker run -p 6333:6333 "
            "qdrant/qdrant`) and connect to it with --url / QDRANT_URL so several processes can share it."
        ) from exc


def is_local(client: QdrantClient) -> bool:
    """Whether a client runs Qdrant in-process (local mode) rather than talking to a server."""
    options = client.init_options
    return options.get("location") == ":memory:" or options.get("path") is not None


def to_filter(filter: Mapping[str, Any] | Filter | None) -> Filter | None:
    """A Qdrant filter from ``{"key": value}`` (all must match; a list value matches any of its items).

    Keys refer to document metadata; a native ``qdrant_client.models.Filter`` passes through.
    """
    from qdrant_client import models

    if filter is None or isinstance(filter, models.Filter):
        return filter
    if not isinstance(filter, Mapping):
        raise InvalidInputError(
            f"filter must be a dict like {{'source': 'a.md'}} or a qdrant_client.models.Filter, "
            f"not {type(filter).__name__}."
        )
    conditions: list[Any] = []
    for key, value in filter.items():
        field_key = f"{METADATA_KEY}.{key}"
        if isinstance(value, (list, tuple, set)):
            match: Any = models.MatchAny(any=list(value))
        elif isinstance(value, (str, int, bool)):
            match = models.MatchValue(value=value)
        else:
            raise InvalidInputError(
                f"filter value for {key!r} must be a string, integer, bool or a list of them, got "
                f"{type(value).__name__}; pass a qdrant_client.models.Filter for ranges."
            )
        conditions.append(models.FieldCondition(key=field_key, match=match))
    return models.Filter(must=conditions)


class QdrantStore:
    """Documents embedded by a search-r3 model, in a Qdrant collection.

    Example:
        ```python
        store = QdrantStore(embeddings, "notes", path=":memory:")
        store.add_documents(["Paris is the capital of France."], ids=["paris"])
        result = store.search("where is the Louvre?", k=3)
        print(result.reasoning, result.hits[0].id)
        ```

    Args:
        embeddings: The model that embeds documents and queries.
        collection_name: Qdrant collection to use (created if missing).
        path: Local-mode folder, or ``":memory:"``. Default (no url either): ``QDRANT_URL`` if
            set, else `default_store_path`.
        url, api_key: A Qdrant server (same API as local mode).
        client: An existing ``QdrantClient`` (the store does not close it).
        model_name: Recorded in a new collection's metadata (default: the model's path or Hub
            id); `collection_model` reads it back.
    """

    def __init__(
        self,
        embeddings: ReasoningEmbeddings,
        collection_name: str = "search_r3",
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        model_name: str | None = None,
    ):
        if client is not None and (path is not None or url is not None):
            raise ValueError("Give either client or path/url, not both.")
        self.embeddings = embeddings
        self.collection_name = collection_name
        self.model_name = model_name or model_name_of(embeddings)
        self._owns_client = client is None
        self.client = client if client is not None else open_client(path, url, api_key)
        self.local = is_local(self.client)
        self._warned_size = False
        try:
            self._ensure_collection()
        except Exception:
            self.close()
            raise
        self._warn_if_large()

    # -- collection ---------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return int(self.embeddings.embedding_dimension)

    def _ensure_collection(self) -> None:
        from qdrant_client import models

        if not self.client.collection_exists(self.collection_name):
            self.client.create_collection(
                self.collection_name,
                vectors_config=models.VectorParams(size=self.dimension, distance=models.Distance.COSINE),
                # which model made the vectors, so tools can reopen it with the same one
                metadata={METADATA_MODEL_KEY: {"model": self.model_name, "dimension": self.dimension}},
            )
            return
        config = self.client.get_collection(self.collection_name).config
        stored = (getattr(config, "metadata", None) or {}).get(METADATA_MODEL_KEY) or {}
        if stored.get("model") and self.model_name and stored["model"] != self.model_name:
            logger.warning(
                "Collection %r was indexed with the model %s; searching it with %s. Vectors of two "
                "different models are not comparable: use the same model or another collection.",
                self.collection_name,
                stored["model"],
                self.model_name,
            )
        params = config.params.vectors
        if not isinstance(params, models.VectorParams):
            names = sorted(params or {})
            raise CollectionMismatchError(
                f"Collection {self.collection_name!r} uses named vectors {names}; search-r3 needs one "
                f"unnamed vector of size {self.dimension} with cosine distance. Use another collection name."
            )
        if params.size != self.dimension or params.distance != models.Distance.COSINE:
            raise CollectionMismatchError(
                f"Collection {self.collection_name!r} holds vectors of size {params.size} with "
                f"{params.distance.value} distance, but the model {self._model_name()} makes vectors of "
                f"size {self.dimension} compared by Cosine. It was indexed with another model: use a "
                "different collection name, or delete it and index again with this model."
            )

    def _model_name(self) -> str:
        return repr(self.model_name or type(self.embeddings).__name__)

    def _warn_if_large(self) -> None:
        if not self.local or self._warned_size:
            return
        count = self.count()
        if count > LOCAL_MODE_COMFORT_LIMIT:
            self._warned_size = True
            message = (
                f"Collection {self.collection_name!r} holds {count:,} points, above the "
                f"{LOCAL_MODE_COMFORT_LIMIT:,} that Qdrant's local mode handles comfortably (it searches "
                "by brute force and keeps everything in memory). Use a Qdrant server: "
                "QdrantStore(..., url='http://localhost:6333') or `search-r3 --url ...`."
            )
            warnings.warn(message, UserWarning, stacklevel=3)
            logger.warning(message)

    # -- writing ------------------------------------------------------------------------------
    def add_documents(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
        skip_existing: bool = True,
    ) -> list[str]:
        """Embed and store documents; returns their ids (given, or derived from the text).

        Point ids are derived from document ids, so adding the same documents again stores
        nothing twice. With ``skip_existing`` (default) documents already stored are not even
        embedded again: an interrupted indexing run resumes where it stopped. Pass
        ``skip_existing=False`` to re-embed and overwrite them (e.g. after editing a text).
        """
        if isinstance(texts, str):
            raise InvalidInputError("texts must be a list of strings; wrap a single text in a list.")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(
                    f"document at index {i} is empty or not a string; remove it before indexing."
                )
        if ids is None:
            doc_ids = [content_id(t) for t in texts]
        else:
            doc_ids = [str(i) for i in ids]
            if len(doc_ids) != len(texts):
                raise InvalidInputError(f"{len(doc_ids)} ids for {len(texts)} texts; give one id per text.")
            seen: set[str] = set()
            for doc_id in doc_ids:
                if doc_id in seen:
                    raise InvalidInputError(f"id {doc_id!r} appears twice; ids must be unique.")
                seen.add(doc_id)
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidInputError(f"{len(metadatas)} metadatas for {len(texts)} texts; give one per text.")
        metas = [dict(m or {}) for m in metadatas] if metadatas is not None else [{} for _ in texts]

        # identical texts without ids map to one point; keep the first
        order = list(range(len(texts))) if ids is not None else _first_of_each(doc_ids)
        show = len(order) > batch_size if show_progress_bar is None else show_progress_bar
        with tqdm(total=len(order), desc="Indexing", unit="doc", disable=not show) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                if skip_existing:
                    stored = self._existing({point_id(doc_ids[i]) for i in batch})
                    todo = [i for i in batch if point_id(doc_ids[i]) not in stored]
                else:
                    todo = batch
                if todo:
                    vectors = self.embeddings.encode_documents(
                        [texts[i] for i in todo], show_progress_bar=False
                    )
                    self._upsert(
                        [doc_ids[i] for i in todo],
                        vectors,
                        [texts[i] for i in todo],
                        [metas[i] for i in todo],
                    )
                bar.update(len(batch))
        self._warn_if_large()
        return doc_ids

    def add_vectors(
        self,
        vectors: np.ndarray,
        texts: Sequence[str],
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Store precomputed document vectors (e.g. encoded once for an evaluation)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise InvalidInputError(f"vectors must have shape (n, {self.dimension}), got {vectors.shape}.")
        if not len(vectors) == len(texts) == len(ids):
            raise InvalidInputError("vectors, texts and ids must have the same length.")
        metas = [dict(m or {}) for m in metadatas] if metadatas is not None else [{} for _ in texts]
        self._upsert([str(i) for i in ids], vectors, list(texts), metas)
        self._warn_if_large()
        return [str(i) for i in ids]

    def _existing(self, point_ids: set[str]) -> set[str]:
        if not point_ids:
            return set()
        found = self.client.retrieve(
            self.collection_name, ids=list(point_ids), with_payload=False, with_vectors=False
        )
        return {str(p.id) for p in found}

    def _upsert(
        self, doc_ids: list[str], vectors: np.ndarray, texts: list[str], metas: list[dict[str, Any]]
    ) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=point_id(doc_id),
                vector=vector.tolist(),
                payload={DOC_ID_KEY: doc_id, TEXT_KEY: text, METADATA_KEY: meta},
            )
            for doc_id, vector, text, meta in zip(doc_ids, vectors, texts, metas, strict=True)
        ]
        self.client.upsert(self.collection_name, points=points, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id (unknown ids are ignored)."""
        from qdrant_client import models

        self.client.delete(
            self.collection_name, points_selector=models.PointIdsList(points=[point_id(str(i)) for i in ids])
        )

    # -- reading ------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Mapping[str, Any] | Filter | None = None,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
    ) -> SearchResult:
        """Embed ``query`` (reasoning as configured, or as given) and return the ``k`` closest documents."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string.")
        encoded = self.embeddings.encode_queries(
            [query], reasoning=reasoning, max_reasoning_tokens=max_reasoning_tokens
        )
        hits = self.search_by_vector(encoded.embeddings[0], k, filter=filter)
        reasoning_text = encoded.reasoning[0] if encoded.reasoning else ""
        forced = bool(encoded.forced[0]) if len(encoded.forced) else False
        return SearchResult(hits=hits, reasoning=reasoning_text, forced=forced)

    def search_by_vector(
        self,
        vector: Sequence[float] | np.ndarray,
        k: int = 10,
        *,
        filter: Mapping[str, Any] | Filter | None = None,
    ) -> list[Hit]:
        """The ``k`` documents closest to a ready-made query vector."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dimension:
            raise InvalidInputError(
                f"query vector has {vector.shape[0]} values; the collection needs {self.dimension}."
            )
        if k <= 0:
            raise InvalidInputError(f"k must be positive, got {k}.")
        response = self.client.query_points(
            self.collection_name,
            query=vector.tolist(),
            limit=k,
            query_filter=to_filter(filter),
            with_payload=True,
        )
        return [_hit(p) for p in response.points]

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored documents by id (score 0; unknown ids are left out)."""
        found = self.client.retrieve(
            self.collection_name, ids=[point_id(str(i)) for i in ids], with_payload=True
        )
        by_id = {h.id: h for h in (_hit(p) for p in found)}
        return [by_id[str(i)] for i in ids if str(i) in by_id]

    def count(self) -> int:
        """Number of documents in the collection."""
        return int(self.client.count(self.collection_name, exact=True).count)

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the client (and the local folder's lock) if this store opened it."""
        if self._owns_client and self.client is not None:
            self.client.close()

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "local" if self.local else "server"
        return f"QdrantStore({self.collection_name!r}, {where}, dim={self.dimension})"


def collection_model(client: QdrantClient, collection_name: str) -> str | None:
    """The model recorded when ``collection_name`` was created, or ``None`` (unknown or absent)."""
    if not client.collection_exists(collection_name):
        return None
    config = client.get_collection(collection_name).config
    stored = (getattr(config, "metadata", None) or {}).get(METADATA_MODEL_KEY) or {}
    return stored.get("model") or None


def model_name_of(embeddings: Any) -> str:
    """The path (absolute) or Hub id a model was loaded from; empty when unknown."""
    config = getattr(getattr(embeddings, "model", None), "config", None)
    name = str(getattr(config, "_name_or_path", "") or "")
    if name and Path(name).exists():
        name = str(Path(name).resolve())
    return name


def _first_of_each(doc_ids: list[str]) -> list[int]:
    first: dict[str, int] = {}
    for i, doc_id in enumerate(doc_ids):
        first.setdefault(doc_id, i)
    return list(first.values())


def _hit(point: Any) -> Hit:
    payload = point.payload or {}
    return Hit(
        id=str(payload.get(DOC_ID_KEY, point.id)),
        score=float(getattr(point, "score", 0.0) or 0.0),
        text=str(payload.get(TEXT_KEY, "")),
        metadata=dict(payload.get(METADATA_KEY) or {}),
    )
