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
from search_r3.sparse import Bm25Settings, SparseEncoder, SparseVector

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

#: Names of the two vectors of a hybrid collection (a dense-only collection has one unnamed vector).
DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"
#: Key of the BM25 settings inside a hybrid collection's ``search_r3`` metadata.
METADATA_SPARSE_KEY = "sparse"

#: Search modes and fusion methods of :meth:`QdrantStore.search`.
MODES = ("hybrid", "dense", "sparse")
FUSIONS = ("rrf", "dbsf")


class StoreError(SearchR3Error):
    """Something about the vector store went wrong; the message names the fix."""


class StoreLockedError(StoreError, RuntimeError):
    """A local store folder is already opened by another client (process)."""


class CollectionMismatchError(StoreError, ValueError):
    """An existing collection's vector size or distance does not match the model."""


class DenseOnlyCollectionError(StoreError, ValueError):
    """Sparse or hybrid search asked of a collection that holds dense vectors only."""


@dataclass(frozen=True)
class HybridSettings:
    """How :meth:`QdrantStore.search` builds its sparse query and fuses the two rankings.

    The defaults are the settings that measured best (nDCG@10) on Cranfield's dev split (45
    queries) with the shipped model and reasoning on: DBSF with the reasoning's tokens at 0.25;
    for RRF, k=61 with the dense ranking weighted 2:1 (see the hybrid section of the Qdrant
    guide). The test split was not used to choose them.

    Attributes:
        fusion: ``"rrf"`` (reciprocal rank fusion, weighted) or ``"dbsf"`` (distribution-based
            score fusion: each side's scores normalised by mean ± 3 std, then summed; no weights).
        rrf_k: Qdrant's RRF constant: a document at rank r (1-based) scores
            ``weight / (r + weight * (rrf_k - 1))``; ``rrf_k=61`` is the classic ``1 / (60 + r)``.
        dense_weight, sparse_weight: RRF weights of the dense and the sparse ranking.
        prefetch: Candidates taken from each side before fusion (at least ``k``).
        expand: With reasoning on, add the reasoning text to the sparse query (query expansion).
        query_weight, reasoning_weight: Weight of each query token and of each reasoning token in
            the sparse query (a token in both gets the sum).
    """

    fusion: str = "dbsf"
    rrf_k: int = 61
    dense_weight: float = 2.0
    sparse_weight: float = 1.0
    prefetch: int = 100
    expand: bool = True
    query_weight: float = 1.0
    reasoning_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise InvalidInputError(f"fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}.")
        if self.rrf_k < 1 or self.prefetch < 1:
            raise InvalidInputError("rrf_k and prefetch must be positive.")
        if min(self.dense_weight, self.sparse_weight, self.query_weight, self.reasoning_weight) < 0:
            raise InvalidInputError("fusion and query weights must not be negative.")

    def replace(self, **changes: Any) -> HybridSettings:
        """A copy with some fields changed (``None`` values are ignored)."""
        from dataclasses import replace

        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class Hit:
    """One search result: the document id, score (cosine, BM25 or fused, by mode), text and metadata."""

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
    mode: str = "dense"

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
    :func:`default_store_path`. A local folder locked by another client raises
    :class:`StoreLockedError`.
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
        >>> store = QdrantStore(embeddings, "notes", path=":memory:")
        >>> store.add_documents(["Paris is the capital of France."], ids=["paris"])
        >>> result = store.search("where is the Louvre?", k=3)
        >>> print(result.reasoning, result.hits[0].id)

    Args:
        embeddings: The model that embeds documents and queries.
        collection_name: Qdrant collection to use (created if missing).
        path: Local-mode folder, or ``":memory:"``. Default (no url either): ``QDRANT_URL`` if
            set, else :func:`default_store_path`.
        url, api_key: A Qdrant server (same API as local mode).
        client: An existing ``QdrantClient`` (the store does not close it).
        model_name: Recorded in a new collection's metadata (default: the model's path or Hub
            id); :func:`collection_model` reads it back.
        hybrid: Create a new collection with a dense and a BM25 sparse vector per point (default
            ``True``); ``False`` makes a dense-only collection. An existing collection keeps its
            format (``hybrid=True`` on a dense-only one raises).
        sparse_settings: BM25 parameters for a new hybrid collection (an existing one uses the
            settings recorded when it was created).
        hybrid_settings: Default fusion and sparse-query settings of :meth:`search`.
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
        hybrid: bool | None = None,
        sparse_settings: Bm25Settings | None = None,
        hybrid_settings: HybridSettings | None = None,
    ):
        if client is not None and (path is not None or url is not None):
            raise ValueError("Give either client or path/url, not both.")
        self.hybrid = True if hybrid is None else bool(hybrid)
        self._hybrid_asked = hybrid
        self.sparse_settings = sparse_settings or Bm25Settings()
        self.hybrid_settings = hybrid_settings or HybridSettings()
        self._sparse: SparseEncoder | None = None
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
            if self.hybrid:
                self._create_hybrid_collection()
                return
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
        if isinstance(params, dict) and DENSE_VECTOR in params:
            params = self._open_hybrid_collection(config, stored)
        elif isinstance(params, models.VectorParams):
            self._open_dense_only_collection()
        if not isinstance(params, models.VectorParams):
            names = sorted(params or {})
            raise CollectionMismatchError(
                f"Collection {self.collection_name!r} uses named vectors {names}; search-r3 needs a "
                f"{DENSE_VECTOR!r} vector and a {SPARSE_VECTOR!r} sparse vector (hybrid), or one unnamed "
                f"vector of size {self.dimension} with cosine distance. Use another collection name."
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

    # -- hybrid collections: a named dense vector and a BM25 sparse vector -----------------------
    def _create_hybrid_collection(self) -> None:
        from qdrant_client import models

        self.client.create_collection(
            self.collection_name,
            vectors_config={
                DENSE_VECTOR: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
            },
            # IDF over the collection as it stands is Qdrant's job (the vectors hold BM25 term weights)
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={
                METADATA_MODEL_KEY: {
                    "model": self.model_name,
                    "dimension": self.dimension,
                    METADATA_SPARSE_KEY: self.sparse_settings.to_dict(),
                }
            },
        )

    def _open_hybrid_collection(self, config: Any, stored: Mapping[str, Any]) -> Any:
        """Check an existing hybrid collection; returns its dense vector's parameters."""
        sparse = getattr(config.params, "sparse_vectors", None) or {}
        if SPARSE_VECTOR not in sparse:
            raise CollectionMismatchError(
                f"Collection {self.collection_name!r} has a {DENSE_VECTOR!r} vector but no {SPARSE_VECTOR!r} "
                "sparse vector, so it was not made by search-r3. Use another collection name."
            )
        if self._hybrid_asked is False:
            logger.info(
                "Collection %r is hybrid; hybrid=False only applies to new collections.", self.collection_name
            )
        self.hybrid = True
        recorded = stored.get(METADATA_SPARSE_KEY)
        if isinstance(recorded, Mapping):
            self.sparse_settings = Bm25Settings.from_dict(dict(recorded))
        return config.params.vectors[DENSE_VECTOR]

    def _open_dense_only_collection(self) -> None:
        if self._hybrid_asked:
            raise DenseOnlyCollectionError(self._dense_only_message("hybrid=True"))
        self.hybrid = False

    def _dense_only_message(self, asked: str) -> str:
        return (
            f"Collection {self.collection_name!r} holds dense vectors only (it was created by an earlier "
            f"search-r3 or with hybrid=False), so {asked} is not available. Search it with mode='dense' "
            "(CLI: --mode dense), or index the documents again into a new collection, which is hybrid: "
            f"`search-r3 index PATH --collection {self.collection_name}-hybrid`."
        )

    @property
    def sparse_encoder(self) -> SparseEncoder:
        """The BM25 encoder of this collection (built on first use)."""
        if self._sparse is None:
            self._sparse = SparseEncoder(self.sparse_settings)
        return self._sparse

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

        sparse = self.sparse_encoder.encode_documents(texts) if self.hybrid else [None] * len(texts)
        points = [
            models.PointStruct(
                id=point_id(doc_id),
                vector=self._point_vector(vector, sparse_vector),
                payload={DOC_ID_KEY: doc_id, TEXT_KEY: text, METADATA_KEY: meta},
            )
            for doc_id, vector, sparse_vector, text, meta in zip(
                doc_ids, vectors, sparse, texts, metas, strict=True
            )
        ]
        self.client.upsert(self.collection_name, points=points, wait=True)

    def _point_vector(self, vector: np.ndarray, sparse: SparseVector | None) -> Any:
        """What a point stores: the dense vector, or both named vectors in a hybrid collection."""
        if not self.hybrid:
            return vector.tolist()
        assert sparse is not None
        return {DENSE_VECTOR: vector.tolist(), SPARSE_VECTOR: sparse.to_qdrant()}

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id, both their vectors (unknown ids are ignored)."""
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
        mode: str | None = None,
        fusion: str | None = None,
        settings: HybridSettings | None = None,
    ) -> SearchResult:
        """Embed ``query`` (reasoning as configured, or as given) and return the ``k`` best documents.

        The query is reasoned about (and embedded) once. In ``"hybrid"`` mode one Qdrant Query
        API call ranks the collection by the dense vector and by BM25, and fuses the two
        rankings; with reasoning on, the BM25 query is the query text plus the reasoning text
        (see :class:`HybridSettings`). ``filter`` applies to both sides.

        Example:
            ```python
            result = store.search("wing lift at high angles", k=5, mode="hybrid", fusion="rrf")
            print(result.reasoning, [hit.id for hit in result.hits])
            ```

        Args:
            mode: ``"hybrid"``, ``"dense"`` or ``"sparse"`` (BM25 only). Default: hybrid for a
                hybrid collection, dense for a dense-only one.
            fusion: ``"rrf"`` or ``"dbsf"`` for this call (default: ``settings.fusion``).
            settings: Fusion and sparse-query settings for this call (default: the store's
                ``hybrid_settings``).

        Returns:
            The hits (cosine scores in dense mode, BM25 scores in sparse mode, fusion scores in
            hybrid mode), the reasoning text and whether its budget ran out.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string.")
        mode = self._resolve_mode(mode)
        settings = (settings or self.hybrid_settings).replace(fusion=fusion)
        reasons = self.embeddings.reasoning if reasoning is None else reasoning
        if mode == "sparse" and not (reasons and settings.expand):
            # BM25 alone needs no model call
            sparse = self.sparse_encoder.encode_query(query, query_weight=settings.query_weight)
            hits = self.search_by_vectors(None, sparse, k, mode=mode, filter=filter, settings=settings)
            return SearchResult(hits=hits, mode=mode)
        encoded = self.embeddings.encode_queries(
            [query], reasoning=reasoning, max_reasoning_tokens=max_reasoning_tokens
        )
        reasoning_text = encoded.reasoning[0] if encoded.reasoning else ""
        forced = bool(encoded.forced[0]) if len(encoded.forced) else False
        if mode == "dense":
            hits = self.search_by_vector(encoded.embeddings[0], k, filter=filter)
            return SearchResult(hits=hits, reasoning=reasoning_text, forced=forced, mode=mode)
        sparse = self.sparse_query(query, reasoning_text, settings)
        hits = self.search_by_vectors(
            encoded.embeddings[0], sparse, k, mode=mode, filter=filter, settings=settings
        )
        return SearchResult(hits=hits, reasoning=reasoning_text, forced=forced, mode=mode)

    def sparse_query(
        self, query: str, reasoning: str = "", settings: HybridSettings | None = None
    ) -> SparseVector:
        """The BM25 query vector: the query's tokens, plus the reasoning's when ``settings.expand``."""
        settings = settings or self.hybrid_settings
        return self.sparse_encoder.encode_query(
            query,
            reasoning if settings.expand else None,
            query_weight=settings.query_weight,
            reasoning_weight=settings.reasoning_weight,
        )

    def _resolve_mode(self, mode: str | None) -> str:
        if mode is None:
            return "hybrid" if self.hybrid else "dense"
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
        if mode != "dense" and not self.hybrid:
            raise DenseOnlyCollectionError(self._dense_only_message(f"mode={mode!r}"))
        return mode

    def search_by_vectors(
        self,
        dense: Sequence[float] | np.ndarray | None,
        sparse: SparseVector | None,
        k: int = 10,
        *,
        mode: str = "hybrid",
        filter: Mapping[str, Any] | Filter | None = None,
        settings: HybridSettings | None = None,
    ) -> list[Hit]:
        """The ``k`` best documents for a ready-made dense and/or sparse query (one Query API call).

        ``"hybrid"`` sends two ``Prefetch`` queries (each ``max(settings.prefetch, k)`` deep,
        both filtered) and fuses them with RRF (weighted) or DBSF; ``"sparse"`` ranks by BM25
        alone; ``"dense"`` is :meth:`search_by_vector`.
        """
        from qdrant_client import models

        mode = self._resolve_mode(mode)
        if mode == "dense":
            if dense is None:
                raise InvalidInputError("dense mode needs a dense query vector.")
            return self.search_by_vector(dense, k, filter=filter)
        if k <= 0:
            raise InvalidInputError(f"k must be positive, got {k}.")
        if sparse is None:
            raise InvalidInputError(f"{mode} mode needs a sparse query vector (store.sparse_query(text)).")
        settings = settings or self.hybrid_settings
        query_filter = to_filter(filter)
        if mode == "sparse":
            if not len(sparse):  # only stop words: nothing can match
                return []
            response = self.client.query_points(
                self.collection_name,
                query=sparse.to_qdrant(),
                using=SPARSE_VECTOR,
                limit=k,
                query_filter=query_filter,
                with_payload=True,
            )
            return [_hit(p) for p in response.points]
        if dense is None:
            raise InvalidInputError("hybrid mode needs a dense query vector.")
        vector = self._dense_query(dense)
        depth = max(settings.prefetch, k)
        prefetch = [models.Prefetch(query=vector, using=DENSE_VECTOR, limit=depth, filter=query_filter)]
        if len(sparse):
            prefetch.append(
                models.Prefetch(
                    query=sparse.to_qdrant(), using=SPARSE_VECTOR, limit=depth, filter=query_filter
                )
            )
        response = self.client.query_points(
            self.collection_name,
            prefetch=prefetch,
            query=fusion_query(settings, sides=len(prefetch)),
            limit=k,
            query_filter=query_filter,
            with_payload=True,
        )
        return [_hit(p) for p in response.points]

    def _dense_query(self, vector: Sequence[float] | np.ndarray) -> list[float]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dimension:
            raise InvalidInputError(
                f"query vector has {vector.shape[0]} values; the collection needs {self.dimension}."
            )
        return vector.tolist()

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
            using=DENSE_VECTOR if self.hybrid else None,
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
        kind = ", hybrid" if self.hybrid else ""
        return f"QdrantStore({self.collection_name!r}, {where}, dim={self.dimension}{kind})"


def collection_model(client: QdrantClient, collection_name: str) -> str | None:
    """The model recorded when ``collection_name`` was created, or ``None`` (unknown or absent)."""
    if not client.collection_exists(collection_name):
        return None
    config = client.get_collection(collection_name).config
    stored = (getattr(config, "metadata", None) or {}).get(METADATA_MODEL_KEY) or {}
    return stored.get("model") or None


def fusion_query(settings: HybridSettings, sides: int = 2) -> Any:
    """The Qdrant query that fuses the prefetched rankings (dense first, then sparse)."""
    from qdrant_client import models

    if settings.fusion == "dbsf":
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    weights = [settings.dense_weight, settings.sparse_weight][:sides]
    return models.RrfQuery(rrf=models.Rrf(k=settings.rrf_k, weights=weights))


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
