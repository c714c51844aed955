"""A Qdrant vector store for search-r3: index documents, search with reasoning, filter on metadata.

A folder (by default under the user's data directory) holds an embedded Qdrant engine
(qdrant-edge: write-ahead log, HNSW index, no server); folders made with qdrant-client's local
mode keep opening with it, and ``":memory:"`` keeps everything in the process. ``url`` /
``api_key`` (or ``QDRANT_URL`` / ``QDRANT_API_KEY``) talk to a Qdrant server or cluster with the
same behaviour (see `search_r3.store_backends`). The store creates its collection from the
model's dimension, so it never embeds a dummy text (with reasoning that would be a whole
generation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from search_r3.errors import InvalidInputError
from search_r3.sparse import Bm25Settings, SparseEncoder, SparseVector
from search_r3.store_backends import backend_name, open_store_client, optimize_collection
from search_r3.store_backends.client import is_read_only as _is_read_only
from search_r3.store_backends.client import read_only_error as _read_only
from search_r3.store_backends.errors import StoreError, StoreLockedError, StoreOptionsError  # noqa: F401

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.models import Filter

    from search_r3.model import ReasoningEmbeddings

logger = logging.getLogger(__name__)

#: qdrant-client's local mode warns above this many points (the embedded engine or a server go past it).
LOCAL_MODE_COMFORT_LIMIT = 20_000

#: Characters per token that no tokenizer exceeds in practice: texts are cut at
#: ``max_length * MAX_CHARS_PER_TOKEN`` characters before embedding (see ``QdrantStore._embeddable``).
MAX_CHARS_PER_TOKEN = 32

#: Namespace of the deterministic point ids (uuid5 of the document id).
POINT_NAMESPACE = uuid.UUID("6f1d5e0a-2c3b-5b7e-9a54-5e1c2a3b7d90")

TEXT_KEY = "text"
DOC_ID_KEY = "doc_id"
METADATA_KEY = "metadata"
METADATA_MODEL_KEY = "search_r3"
#: Payload field holding a hash of the text and metadata: a sync re-embeds a document when it changes.
HASH_KEY = "hash"

#: What a sync removes: nothing, stale chunks of the sources it saw, or everything it did not see.
Cleanup = Literal["incremental", "full"] | None

#: Names of the two vectors of a hybrid collection (a dense-only collection has one unnamed vector).
DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"
#: Key of the BM25 settings inside a hybrid collection's ``search_r3`` metadata.
METADATA_SPARSE_KEY = "sparse"

#: Search modes and fusion methods of `QdrantStore.search`.
MODES = ("hybrid", "dense", "sparse")
FUSIONS = ("rrf", "dbsf")


class CollectionMismatchError(StoreError, ValueError):
    """An existing collection's vector size or distance does not match the model."""


class MissingCollectionError(StoreError, LookupError):
    """A collection that must exist (for searching or deleting) does not."""


@dataclass
class IndexResult:
    """What a sync changed: documents added, re-embedded (updated), deleted, and left unchanged."""

    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.deleted} deleted, {self.unchanged} unchanged"
        )


class DenseOnlyCollectionError(StoreError, ValueError):
    """Sparse or hybrid search asked of a collection that holds dense vectors only."""


@dataclass(frozen=True)
class HybridSettings:
    """How `QdrantStore.search` builds its sparse query and fuses the two rankings.

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


def document_hash(text: str, metadata: Mapping[str, Any]) -> str:
    """Hash of a document's text and metadata, stored with it so a sync can tell an edit."""
    blob = json.dumps([text, metadata], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def open_client(
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    *,
    backend: str | None = None,
) -> QdrantClient:
    """A store client: a server when ``url`` (or ``QDRANT_URL``), else the folder at ``path``.

    A folder opens with the engine that made it: the embedded Qdrant engine (qdrant-edge) for a
    new folder, qdrant-client's local mode for one made by an earlier search-r3 (a log line
    suggests `search-r3 store migrate`); ``backend="edge"`` or ``"local"`` forces one.
    ``path=":memory:"`` keeps everything in this process; ``path=None`` without a URL uses
    `default_store_path`. A folder open in another client raises `StoreLockedError`. Every
    client answers the same qdrant-client calls (see `search_r3.store_backends.StoreClient`).

    Example:
        ```python
        client = open_client("./store")  # the embedded engine
        print(client.get_collections())
        client.close()
        ```
    """
    default = None
    if path is None and url is None and not os.environ.get("QDRANT_URL"):
        default = default_store_path()
    return open_store_client(path, url, api_key, backend=backend, default_folder=default)


def require_collection(client: QdrantClient, collection_name: str, *, non_empty: bool = False) -> None:
    """Raise a clear error (listing the collections there are) when ``collection_name`` is missing.

    With ``non_empty``, a collection without documents is an error too (nothing to search). A
    server that stops answering is a one-line `StoreError`. The CLI checks this before it loads
    a model.
    """
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        if client.collection_exists(collection_name):
            if non_empty and int(client.count(collection_name, exact=True).count) == 0:
                raise MissingCollectionError(
                    f"Collection {collection_name!r} is empty; index documents first: "
                    f"search-r3 index PATH --collection {collection_name}"
                )
            return
        names = sorted(c.name for c in client.get_collections().collections)
    except (ResponseHandlingException, UnexpectedResponse) as exc:
        raise StoreError(
            f"Could not reach the Qdrant server ({' '.join(str(exc).split())}); check --url / $QDRANT_URL "
            "and that the server is running, or drop --url to use the local store."
        ) from exc
    existing = f"the store holds {', '.join(repr(n) for n in names)}" if names else "the store is empty"
    raise MissingCollectionError(
        f"No collection {collection_name!r} ({existing}). Pick one with --collection, or index "
        f"documents first: search-r3 index PATH --collection {collection_name}"
    )


def is_local(client: QdrantClient) -> bool:
    """Whether a client runs Qdrant in this process (a folder or memory) rather than on a server."""
    return backend_name(client) != "server"


def to_filter(filter: Mapping[str, Any] | Filter | None) -> Filter | None:
    """A Qdrant filter from ``{"key": value}`` (all must match; a list value matches any of its items).

    Keys refer to document metadata (a key holding ``.`` or an empty key is quoted, so it matches
    that key literally rather than a nested field). Values are matched with their Python type:
    ``"123"`` matches the string, ``123`` the integer; a list may mix types (``["123", 123]``
    matches either). A native ``qdrant_client.models.Filter`` passes through.

    Example:
        ```python
        to_filter({"topic": "art", "year": [1990, 1991], "zip": ["02139", 2139]})
        ```
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
        field_key = metadata_field(key)
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            raise InvalidInputError(f"filter value for {key!r} is an empty list; give at least one value.")
        by_type: dict[type, list[Any]] = {}
        for item in values:
            if type(item) not in (str, int, bool):
                raise InvalidInputError(
                    f"filter value for {key!r} must be a string, integer, bool or a list of them, got "
                    f"{type(item).__name__}; pass a qdrant_client.models.Filter for ranges."
                )
            by_type.setdefault(type(item), []).append(item)
        alternatives: list[Any] = []
        for kind, group in by_type.items():
            if kind is bool:  # Qdrant's MatchAny takes strings or integers, not bools
                matches: list[Any] = [models.MatchValue(value=b) for b in dict.fromkeys(group)]
            elif len(group) == 1:
                matches = [models.MatchValue(value=group[0])]
            else:
                matches = [models.MatchAny(any=group)]
            alternatives += [models.FieldCondition(key=field_key, match=m) for m in matches]
        conditions.append(alternatives[0] if len(alternatives) == 1 else models.Filter(should=alternatives))
    return models.Filter(must=conditions)


def metadata_field(key: str) -> str:
    """The payload path of a metadata key, quoted when the key holds ``.`` or is empty."""
    if not isinstance(key, str):
        raise InvalidInputError(f"filter keys must be strings, got {type(key).__name__}.")
    if '"' in key:
        raise InvalidInputError(
            f"filter key {key!r} holds a double quote, which Qdrant cannot match; rename it."
        )
    if key and key.replace("_", "").replace("-", "").isalnum():
        return f"{METADATA_KEY}.{key}"
    return f'{METADATA_KEY}."{key}"'


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
        path: A store folder, or ``":memory:"``. Default (no url either): ``QDRANT_URL`` if
            set, else `default_store_path`.
        url, api_key: A Qdrant server or cluster (the same behaviour as a folder).
        backend: The engine of a folder: ``"edge"`` (Qdrant's engine embedded; the default for a
            new folder) or ``"local"`` (qdrant-client's local mode; folders it made open with it
            by default). See `open_client`.
        client: An existing client (a ``QdrantClient`` or `search_r3.store_backends.EdgeClient`;
            the store does not close it).
        model_name: Recorded in a new collection's metadata (default: the model's path or Hub
            id); `collection_model` reads it back.
        hybrid: Create a new collection with a dense and a BM25 sparse vector per point (default
            ``True``); ``False`` makes a dense-only collection. An existing collection keeps its
            format (``hybrid=True`` on a dense-only one raises).
        sparse_settings: BM25 parameters for a new hybrid collection (an existing one uses the
            settings recorded when it was created).
        hybrid_settings: Default fusion and sparse-query settings of `search`.
    """

    def __init__(
        self,
        embeddings: ReasoningEmbeddings,
        collection_name: str = "search_r3",
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        backend: str | None = None,
        client: QdrantClient | None = None,
        model_name: str | None = None,
        hybrid: bool | None = None,
        sparse_settings: Bm25Settings | None = None,
        hybrid_settings: HybridSettings | None = None,
    ):
        if client is not None and (path is not None or url is not None or backend is not None):
            raise StoreOptionsError("Give either client or path/url/backend, not both.")
        self.hybrid = True if hybrid is None else bool(hybrid)
        self._hybrid_asked = hybrid
        self.sparse_settings = sparse_settings or Bm25Settings()
        self.hybrid_settings = hybrid_settings or HybridSettings()
        self._sparse: SparseEncoder | None = None
        self.embeddings = embeddings
        self.collection_name = collection_name
        self.model_name = model_name or model_name_of(embeddings)
        self._owns_client = client is None
        self.client = client if client is not None else open_client(path, url, api_key, backend=backend)
        #: The engine: ``"edge"``, ``"local"``, ``"memory"`` or ``"server"``.
        self.backend = backend_name(self.client)
        self.local = self.backend != "server"
        self._warned_size = False
        try:
            self._write(self._ensure_collection)
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
                self._index_sources()
                return
            self.client.create_collection(
                self.collection_name,
                vectors_config=models.VectorParams(size=self.dimension, distance=models.Distance.COSINE),
                # which model made the vectors, so tools can reopen it with the same one
                metadata={METADATA_MODEL_KEY: {"model": self.model_name, "dimension": self.dimension}},
            )
            self._index_sources()
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

    def _index_sources(self) -> None:
        """Index ``metadata.source`` in the embedded engine: sync and delete filter by source.

        (A server's payload indexes are the operator's choice; local mode has none.)
        """
        if self.backend == "edge":
            from qdrant_client import models

            self.client.create_payload_index(
                self.collection_name, f"{METADATA_KEY}.source", models.PayloadSchemaType.KEYWORD
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
        if self.backend not in ("local", "memory") or self._warned_size:
            return
        count = self.count()
        if count > LOCAL_MODE_COMFORT_LIMIT:
            self._warned_size = True
            message = (
                f"Collection {self.collection_name!r} holds {count:,} points, above the "
                f"{LOCAL_MODE_COMFORT_LIMIT:,} that Qdrant's local mode handles comfortably (it searches "
                "by brute force and keeps everything in memory). Copy it to the embedded engine "
                "(`search-r3 store migrate OLD_FOLDER NEW_FOLDER`) or use a Qdrant server: "
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
        nothing twice. With ``skip_existing`` (default) documents stored with the same text and
        metadata are not even embedded again (an interrupted indexing run resumes where it
        stopped), while edited ones are re-embedded and overwritten. ``skip_existing=False``
        re-embeds every document. To also remove what is gone, use ``index(..., cleanup=...)``.
        """
        texts, doc_ids, metas, order = self._prepare(texts, ids, metadatas, batch_size)
        self._sync(texts, doc_ids, metas, order, batch_size, show_progress_bar, force=not skip_existing)
        self._optimize_if_due(len(order) > batch_size if show_progress_bar is None else show_progress_bar)
        return doc_ids

    def index(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        cleanup: Cleanup = None,
        source_key: str = "source",
        sources: Sequence[str] = (),
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
        force_update: bool = False,
    ) -> IndexResult:
        """Sync the collection with these documents (LangChain's indexing API semantics).

        New documents are embedded and added, edited ones (another text or metadata under the
        same id) re-embedded, unchanged ones left alone. ``cleanup`` then removes:

        * ``None``: nothing.
        * ``"incremental"``: stored documents of the sources seen in this call (the value of
          ``metadata[source_key]``, plus ``sources``, e.g. files that became empty) whose id is
          no longer among ``ids``: the chunks a shortened file lost.
        * ``"full"``: every stored document whose id is not among ``ids`` (deleted files too);
          pass the whole corpus.

        Writes come first and deletions after, so a run killed at any point and run again ends
        in the same state as one uninterrupted run, with nothing lost or duplicated.

        Example:
            ```python
            result = store.index(texts, ids=ids, metadatas=metas, cleanup="incremental")
            print(result)  # 2 added, 1 updated, 3 deleted, 40 unchanged
            ```

        Args:
            texts, ids, metadatas: The documents, as for ``add_documents``.
            cleanup: What to delete, see above.
            source_key: Metadata key naming each document's source (for ``"incremental"``).
            sources: More sources seen in this run that hold no document any more.
            batch_size: Documents embedded per batch.
            show_progress_bar: Show a progress bar (default: when there is more than one batch).
            force_update: Re-embed every document, changed or not (e.g. after a model update).

        Returns:
            The counts of added, updated, deleted and unchanged documents.
        """
        if cleanup not in (None, "incremental", "full"):
            raise InvalidInputError(f"cleanup must be None, 'incremental' or 'full', got {cleanup!r}.")
        texts, doc_ids, metas, order = self._prepare(texts, ids, metadatas, batch_size)
        groups: list[str] = []
        if cleanup == "incremental":
            for i in order:
                source = metas[i].get(source_key)
                if not isinstance(source, str) or not source:
                    raise InvalidInputError(
                        f"document {doc_ids[i]!r} has no metadata[{source_key!r}]; incremental cleanup "
                        "groups documents by source: add it, or use cleanup='full' or None."
                    )
                groups.append(source)
            groups += [str(s) for s in sources]
        result = self._sync(
            texts, doc_ids, metas, order, batch_size, show_progress_bar, force=force_update, groups=groups
        )
        keep = {point_id(doc_ids[i]) for i in order}
        if cleanup == "incremental":
            result.deleted += self._prune_sources(keep, source_key, set(groups))
        elif cleanup == "full":
            result.deleted += self._prune(keep, None)
        self._warn_if_large()
        self._optimize_if_due(len(order) > batch_size if show_progress_bar is None else show_progress_bar)
        return result

    def optimize(self, *, force: bool = False, show_progress_bar: bool = False) -> bool:
        """Build the search index (HNSW) of the points written since the last build.

        `index` and `add_documents` call this by themselves once
        `search_r3.store_backends.tuning.OPTIMIZE_THRESHOLD` vectors wait for it; call it after
        `add_vectors` bulk loads, or with ``force=True`` to index whatever waits. Only the
        embedded engine builds here (a server indexes in the background; local mode has no
        index), so elsewhere it returns ``False``.

        Example:
            ```python
            store.add_vectors(vectors, texts, ids)
            store.optimize(force=True, show_progress_bar=True)
            ```

        Returns:
            Whether an index build ran.
        """
        return self._write(
            lambda: optimize_collection(
                self.client,
                self.collection_name,
                threshold=0 if force else None,
                show_progress=show_progress_bar,
            )
        )

    def _optimize_if_due(self, show_progress: bool) -> None:
        self.optimize(show_progress_bar=show_progress)

    def _prepare(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        batch_size: int,
    ) -> tuple[list[str], list[str], list[dict[str, Any]], list[int]]:
        """Validated texts, ids, metadatas and the order to embed them in (one per id)."""
        check_batch_size(batch_size)
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
            doc_ids = unique_ids(ids, len(texts), "text")
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidInputError(f"{len(metadatas)} metadatas for {len(texts)} texts; give one per text.")
        metas = [dict(m or {}) for m in metadatas] if metadatas is not None else [{} for _ in texts]
        # identical texts without ids map to one point; keep the first
        order = list(range(len(texts))) if ids is not None else _first_of_each(doc_ids)
        return texts, doc_ids, metas, order

    def _sync(
        self,
        texts: list[str],
        doc_ids: list[str],
        metas: list[dict[str, Any]],
        order: list[int],
        batch_size: int,
        show_progress_bar: bool | None,
        *,
        force: bool,
        groups: Sequence[str] = (),
    ) -> IndexResult:
        """Embed and upsert the documents of ``order`` that are new or changed (all with ``force``)."""
        result = IndexResult()
        hashes = {i: document_hash(texts[i], metas[i]) for i in order}
        show = len(order) > batch_size if show_progress_bar is None else show_progress_bar
        with tqdm(total=len(order), desc="Indexing", unit="doc", disable=not show) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                stored = self._stored_hashes([point_id(doc_ids[i]) for i in batch])
                todo = []
                for i in batch:
                    pid = point_id(doc_ids[i])
                    if pid not in stored:
                        result.added += 1
                    elif force or stored[pid] != hashes[i]:
                        result.updated += 1
                    else:
                        result.unchanged += 1
                        continue
                    todo.append(i)
                if todo:
                    vectors = self.embeddings.encode_documents(
                        self._embeddable([texts[i] for i in todo]), show_progress_bar=False
                    )
                    self._upsert(
                        [doc_ids[i] for i in todo],
                        vectors,
                        [texts[i] for i in todo],
                        [metas[i] for i in todo],
                    )
                bar.update(len(batch))
        self._warn_if_large()
        return result

    def _embeddable(self, texts: list[str]) -> list[str]:
        """Texts cut to a character bound the model's token limit cannot reach past.

        The model keeps at most ``max_length`` tokens of a text; cutting at
        ``MAX_CHARS_PER_TOKEN`` characters per token first embeds the same tokens without
        tokenising a whole 10 MB file (the stored text stays whole).
        """
        limit = int(getattr(self.embeddings, "max_length", 0) or 0) * MAX_CHARS_PER_TOKEN
        return [t[:limit] for t in texts] if limit else texts

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
        doc_ids = unique_ids(ids, len(texts), "vector")
        metas = [dict(m or {}) for m in metadatas] if metadatas is not None else [{} for _ in texts]
        self._upsert(doc_ids, vectors, list(texts), metas)
        self._warn_if_large()
        return doc_ids

    def _existing(self, point_ids: set[str]) -> set[str]:
        if not point_ids:
            return set()
        found = self.client.retrieve(
            self.collection_name, ids=list(point_ids), with_payload=False, with_vectors=False
        )
        return {str(p.id) for p in found}

    def _stored_hashes(self, point_ids: Sequence[str]) -> dict[str, str | None]:
        """The stored content hash of each of these points that exists (``None`` for old points)."""
        if not point_ids:
            return {}
        found = self.client.retrieve(
            self.collection_name, ids=list(point_ids), with_payload=[HASH_KEY], with_vectors=False
        )
        return {str(p.id): (p.payload or {}).get(HASH_KEY) for p in found}

    def _upsert(
        self, doc_ids: list[str], vectors: np.ndarray, texts: list[str], metas: list[dict[str, Any]]
    ) -> None:
        from qdrant_client import models

        sparse = self.sparse_encoder.encode_documents(texts) if self.hybrid else [None] * len(texts)
        points = [
            models.PointStruct(
                id=point_id(doc_id),
                vector=self._point_vector(vector, sparse_vector),
                payload={
                    DOC_ID_KEY: doc_id,
                    TEXT_KEY: text,
                    METADATA_KEY: meta,
                    HASH_KEY: document_hash(text, meta),
                },
            )
            for doc_id, vector, sparse_vector, text, meta in zip(
                doc_ids, vectors, sparse, texts, metas, strict=True
            )
        ]
        self._write(lambda: self.client.upsert(self.collection_name, points=points, wait=True))

    def _write(self, write: Any) -> Any:
        """Run a write; a read-only local folder becomes a clear error."""
        try:
            return write()
        except (OSError, sqlite3.OperationalError) as exc:
            if not _is_read_only(exc):
                raise
            raise _read_only(Path(str(self.client.init_options.get("path") or "")), exc) from exc

    def _point_vector(self, vector: np.ndarray, sparse: SparseVector | None) -> Any:
        """What a point stores: the dense vector, or both named vectors in a hybrid collection."""
        if not self.hybrid:
            return vector.tolist()
        assert sparse is not None
        return {DENSE_VECTOR: vector.tolist(), SPARSE_VECTOR: sparse.to_qdrant()}

    def _prune(self, keep: set[str], where: Mapping[str, Any] | None) -> int:
        """Delete the points matching ``where`` (all when ``None``) whose id is not in ``keep``."""
        stale = [pid for pid in self._point_ids(to_filter(where) if where else None) if pid not in keep]
        return self._delete_counted(stale)

    def _prune_sources(self, keep: set[str], source_key: str, sources: set[str]) -> int:
        """Delete the points of ``sources`` whose id is not in ``keep``.

        A few sources: one filtered scroll each (a server answers from its payload index). Many:
        one scroll over the collection, since local mode scans every point per filter.
        """
        if len(sources) <= 32:
            return sum(self._prune(keep, {source_key: source}) for source in sorted(sources))
        stale = []
        for point in scroll_points(self.client, self.collection_name, payload=[METADATA_KEY]):
            source = ((point.payload or {}).get(METADATA_KEY) or {}).get(source_key)
            if str(point.id) not in keep and isinstance(source, str) and source in sources:
                stale.append(str(point.id))
        return self._delete_counted(stale)

    def _point_ids(self, filter: Filter | None) -> list[str]:
        """Ids of every point matching ``filter`` (all points when ``None``)."""
        return [str(p.id) for p in scroll_points(self.client, self.collection_name, filter)]

    def delete(
        self, ids: Sequence[str] | None = None, *, filter: Mapping[str, Any] | Filter | None = None
    ) -> int:
        """Remove documents by id, or every document matching a filter; returns how many went.

        Unknown ids are ignored and ``delete([])`` does nothing. ``filter`` takes the same forms
        as in ``search``; ``filter={}`` matches (and deletes) every document.

        Example:
            ```python
            store.delete(["notes/a.md#0", "notes/a.md#1"])
            store.delete(filter={"source": "notes/old.md"})
            ```
        """
        if (ids is None) == (filter is None):
            raise InvalidInputError("delete takes ids or a filter (one of them), e.g. delete(['a', 'b']).")
        if ids is not None:
            if isinstance(ids, str):
                raise InvalidInputError("ids must be a list of strings; wrap a single id in a list.")
            point_ids = list(self._existing({point_id(str(i)) for i in ids}))
        else:
            qdrant_filter = to_filter(filter) if not (isinstance(filter, Mapping) and not filter) else None
            point_ids = self._point_ids(qdrant_filter)
        return self._delete_counted(point_ids)

    def _delete_counted(self, point_ids: list[str]) -> int:
        return self._write(lambda: delete_point_ids(self.client, self.collection_name, point_ids))

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
        hnsw_ef: int | None = None,
        exact: bool | None = None,
    ) -> SearchResult:
        """Embed ``query`` (reasoning as configured, or as given) and return the ``k`` best documents.

        The query is reasoned about (and embedded) once. In ``"hybrid"`` mode one Qdrant Query
        API call ranks the collection by the dense vector and by BM25, and fuses the two
        rankings; with reasoning on, the BM25 query is the query text plus the reasoning text
        (see `HybridSettings`). ``filter`` applies to both sides.

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
            hnsw_ef: Candidates the HNSW graph search keeps (more: higher recall, slower;
                default `search_r3.store_backends.tuning.HNSW_EF` or the engine's). Only an indexed
                collection (the embedded engine or a server) uses it.
            exact: Rank every point exactly, without the HNSW index (full recall, slower).

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
            return self.search_encoded(
                query, None, k, mode=mode, filter=filter, settings=settings, hnsw_ef=hnsw_ef, exact=exact
            )
        encoded = self.embeddings.encode_queries(
            [query], reasoning=reasoning, max_reasoning_tokens=max_reasoning_tokens
        )
        return self.search_encoded(
            query,
            encoded.embeddings[0],
            k,
            reasoning=encoded.reasoning[0] if encoded.reasoning else "",
            forced=bool(encoded.forced[0]) if len(encoded.forced) else False,
            mode=mode,
            filter=filter,
            settings=settings,
            hnsw_ef=hnsw_ef,
            exact=exact,
        )

    def search_encoded(
        self,
        query: str,
        vector: Sequence[float] | np.ndarray | None,
        k: int = 10,
        *,
        reasoning: str = "",
        forced: bool = False,
        mode: str | None = None,
        filter: Mapping[str, Any] | Filter | None = None,
        fusion: str | None = None,
        settings: HybridSettings | None = None,
        hnsw_ef: int | None = None,
        exact: bool | None = None,
    ) -> SearchResult:
        """`search` for a query the model has encoded already (no model call).

        ``vector`` and ``reasoning`` are the query's embedding and reasoning text (e.g. from one
        batched ``encode_queries`` call for many queries); the store builds the BM25 side from
        ``query`` and ``reasoning`` as `search` does. ``vector`` may be ``None`` in sparse mode.

        Example:
            ```python
            encoded = store.embeddings.encode_queries(queries, reasoning=True)
            results = [
                store.search_encoded(q, encoded.embeddings[i], k=5, reasoning=encoded.reasoning[i])
                for i, q in enumerate(queries)
            ]
            ```
        """
        mode = self._resolve_mode(mode)
        settings = (settings or self.hybrid_settings).replace(fusion=fusion)
        options = {"filter": filter, "hnsw_ef": hnsw_ef, "exact": exact}
        if mode == "dense":
            if vector is None:
                raise InvalidInputError("dense mode needs the query's dense vector.")
            hits = self.search_by_vector(vector, k, **options)
        else:
            sparse = self.sparse_query(query, reasoning, settings)
            dense = vector if mode == "hybrid" else None
            hits = self.search_by_vectors(dense, sparse, k, mode=mode, settings=settings, **options)
        return SearchResult(hits=hits, reasoning=reasoning, forced=forced, mode=mode)

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
        hnsw_ef: int | None = None,
        exact: bool | None = None,
    ) -> list[Hit]:
        """The ``k`` best documents for a ready-made dense and/or sparse query (one Query API call).

        ``"hybrid"`` sends two ``Prefetch`` queries (each ``max(settings.prefetch, k)`` deep,
        both filtered) and fuses them with RRF (weighted) or DBSF; ``"sparse"`` ranks by BM25
        alone; ``"dense"`` is `search_by_vector`. ``hnsw_ef`` and ``exact`` apply to the dense
        side, as in `search`.
        """
        from qdrant_client import models

        mode = self._resolve_mode(mode)
        params = search_params(hnsw_ef, exact)
        if mode == "dense":
            if dense is None:
                raise InvalidInputError("dense mode needs a dense query vector.")
            return self.search_by_vector(dense, k, filter=filter, hnsw_ef=hnsw_ef, exact=exact)
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
        prefetch = [
            models.Prefetch(query=vector, using=DENSE_VECTOR, limit=depth, filter=query_filter, params=params)
        ]
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
        hnsw_ef: int | None = None,
        exact: bool | None = None,
    ) -> list[Hit]:
        """The ``k`` documents closest to a ready-made query vector (``hnsw_ef``, ``exact``: see `search`)."""
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
            search_params=search_params(hnsw_ef, exact),
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
        kind = ", hybrid" if self.hybrid else ""
        return f"QdrantStore({self.collection_name!r}, {self.backend}, dim={self.dimension}{kind})"


def scroll_points(
    client: QdrantClient, collection_name: str, filter: Filter | None = None, payload: Any = False
) -> Iterator[Any]:
    """Every point matching ``filter`` (all when ``None``), without vectors, page by page."""
    offset = None
    while True:
        points, offset = client.scroll(
            collection_name,
            scroll_filter=filter,
            limit=1000,
            offset=offset,
            with_payload=payload,
            with_vectors=False,
        )
        yield from points
        if offset is None:
            return


def delete_point_ids(client: QdrantClient, collection_name: str, point_ids: Sequence[str]) -> int:
    """Delete points by their Qdrant ids, 1000 per request; returns how many were given."""
    from qdrant_client import models

    point_ids = list(point_ids)
    for start in range(0, len(point_ids), 1000):
        chunk = point_ids[start : start + 1000]
        client.delete(collection_name, points_selector=models.PointIdsList(points=chunk), wait=True)
    return len(point_ids)


def source_point_ids(client: QdrantClient, collection_name: str, source: str) -> list[str]:
    """Ids of the points whose ``metadata.source`` is ``source`` or lies in the folder ``source``."""
    folder = "" if source in ("", ".") else source.rstrip("/") + "/"  # "." is the root itself
    return [
        str(p.id)
        for p in scroll_points(client, collection_name, payload=[METADATA_KEY])
        if isinstance(found := ((p.payload or {}).get(METADATA_KEY) or {}).get("source"), str)
        and (found == source or (found.startswith(folder) and not found.startswith("../")))
    ]


def collection_model(client: QdrantClient, collection_name: str) -> str | None:
    """The model recorded when ``collection_name`` was created, or ``None`` (unknown or absent)."""
    if not client.collection_exists(collection_name):
        return None
    config = client.get_collection(collection_name).config
    stored = (getattr(config, "metadata", None) or {}).get(METADATA_MODEL_KEY) or {}
    return stored.get("model") or None


def search_params(hnsw_ef: int | None = None, exact: bool | None = None) -> Any:
    """Qdrant ``SearchParams`` for ``hnsw_ef`` / ``exact`` (``None`` when neither is set nor defaulted)."""
    from qdrant_client import models

    from search_r3.store_backends import tuning

    if hnsw_ef is not None and (isinstance(hnsw_ef, bool) or not isinstance(hnsw_ef, int) or hnsw_ef < 1):
        raise InvalidInputError(f"hnsw_ef must be a positive integer, got {hnsw_ef!r}.")
    ef = hnsw_ef if hnsw_ef is not None else tuning.HNSW_EF
    if ef is None and not exact:
        return None
    # int8 candidates are rescored with the original vectors (a no-op on unquantised collections)
    quantization = models.QuantizationSearchParams(rescore=True, oversampling=tuning.RESCORE_OVERSAMPLING)
    return models.SearchParams(hnsw_ef=ef, exact=bool(exact), quantization=quantization)


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


def check_batch_size(batch_size: int) -> None:
    """Raise a clear error unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch size must be a positive integer, got {batch_size!r}.")


def unique_ids(ids: Sequence[Any], expected: int, what: str) -> list[str]:
    """``ids`` as strings, one per item and none twice (else a clear error)."""
    if isinstance(ids, str):
        raise InvalidInputError("ids must be a list of strings; wrap a single id in a list.")
    doc_ids = [str(i) for i in ids]
    if len(doc_ids) != expected:
        raise InvalidInputError(f"{len(doc_ids)} ids for {expected} {what}s; give one id per {what}.")
    seen: set[str] = set()
    for doc_id in doc_ids:
        if doc_id in seen:
            raise InvalidInputError(f"id {doc_id!r} appears twice; ids must be unique.")
        seen.add(doc_id)
    return doc_ids


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
