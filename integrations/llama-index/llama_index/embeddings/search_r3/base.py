"""``SearchR3Embedding``: search-r3 reasoning embeddings behind LlamaIndex's ``BaseEmbedding``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding, mean_agg
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from search_r3 import InvalidInputError, QueryEncodings, ReasoningEmbeddings, SearchR3Error
from search_r3.framework_options import dtype_name, loader_kwargs
from search_r3.query_cache import QueryCache
from search_r3.settings import DEFAULT_BATCH_SIZE
from search_r3.sparse import RecentReasoning
from search_r3.store import model_name_of

#: Environment variable read when no ``model`` is given (a local folder or a Hub id).
MODEL_ENV_VAR = "SEARCH_R3_MODEL"

# Where query encodings go while a retriever listens (see `capture_query_encodings`).
# Context-local, so concurrent queries in other threads or tasks never see each other's reasoning.
_capture: ContextVar[list[QueryEncodings] | None] = ContextVar("search_r3_query_capture", default=None)


@contextmanager
def capture_query_encodings() -> Iterator[list[QueryEncodings]]:
    """Collect the `QueryEncodings` of every query a `SearchR3Embedding` embeds inside the block,
    in this context only.

    This lets a retriever read the reasoning of the one query embedding LlamaIndex computes
    (through ``get_query_embedding``, with its callbacks and instrumentation) instead of
    reasoning a second time.
    """
    sink: list[QueryEncodings] = []
    token = _capture.set(sink)
    try:
        yield sink
    finally:
        _capture.reset(token)


class SearchR3Embedding(BaseEmbedding):
    """search-r3 embeddings for LlamaIndex.

    Query embeddings reason first (one short greedy generation: the same query always gives the
    same vector); text (node) embeddings take one forward pass per batch of
    ``embed_batch_size`` texts, without reasoning.

    The ``HuggingFaceEmbedding`` idioms work unchanged: ``model_name=``, ``device=``,
    ``embed_batch_size=``, ``max_length=``, ``show_progress_bar=``, and further loader
    keywords (``revision=``, ``token=``, ``local_files_only=``, ``torch_dtype=``...) either as
    keywords or in ``model_kwargs``. Several queries at once (`get_query_embedding_batch`,
    `aget_query_embedding_batch`, ``get_agg_embedding_from_queries``) and async text batches
    reason or encode in one batched call.

    Args:
        model: A local search-r3 folder, a Hugging Face Hub id, or a loaded
            [`ReasoningEmbeddings`][search_r3.ReasoningEmbeddings] (shared, never modified).
            Default: ``model_name`` (the ``HuggingFaceEmbedding`` spelling, and what
            ``to_dict()`` writes), then the ``SEARCH_R3_MODEL`` environment variable.
        reasoning: Reason before embedding a query (default: the model's setting, which is on).
        max_reasoning_tokens: Budget of reasoning tokens per query (default: the model's).
        device: Where to load ``model`` when it is a path (default: the best device here).
        dtype: Precision to load ``model`` in (``torch_dtype`` is accepted too).
        model_kwargs: Further `ReasoningEmbeddings.from_pretrained` arguments.
        embed_batch_size: Texts per forward pass; default `search_r3.settings.DEFAULT_BATCH_SIZE`.
        show_progress_bar: Show a progress bar while encoding.
        query_cache: A [`QueryCache`][search_r3.query_cache.QueryCache] to look queries up in
            before reasoning: a repeated query (same model weights, text and reasoning settings)
            gets the very same vector back without generating, on every query path (single,
            batched, async, retrievers). Share one object with other models and the LangChain
            adapter; ``QueryCache(path=...)`` keeps it on disk. Not written by ``to_dict()``.
            LlamaIndex's ``embeddings_cache`` caches text (node) embeddings only.
        **kwargs: ``BaseEmbedding`` fields (``callback_manager``, ``num_workers``,
            ``embeddings_cache``...) and loader keywords, as ``HuggingFaceEmbedding`` takes them.

    Example:
        ```python
        from llama_index.embeddings.search_r3 import SearchR3Embedding

        embed_model = SearchR3Embedding(model_name="search-r3-smollm2-135m", device="cpu")
        vector = embed_model.get_query_embedding("which city hosts the Louvre?")
        vectors = embed_model.get_query_embedding_batch(["capital of France?", "tea?"])
        ```
    """

    reasoning: bool | None = Field(default=None, description="Reason before embedding a query.")
    max_reasoning_tokens: int | None = Field(
        default=None, ge=0, description="Reasoning token budget per query (None: the model's)."
    )
    device: str | None = Field(default=None, description="Device the model was loaded on.")
    dtype: str | None = Field(default=None, description="Precision the model was loaded in.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Further ReasoningEmbeddings.from_pretrained arguments."
    )
    show_progress_bar: bool = Field(default=False, description="Show a progress bar while encoding.")

    _model: ReasoningEmbeddings = PrivateAttr()
    _recent: RecentReasoning = PrivateAttr(default_factory=RecentReasoning)
    _query_cache: QueryCache | None = PrivateAttr(default=None)

    def __init__(
        self,
        model: str | Path | ReasoningEmbeddings | None = None,
        *,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        embed_batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress_bar: bool = False,
        query_cache: QueryCache | None = None,
        **kwargs: Any,
    ) -> None:
        if query_cache is not None and not isinstance(query_cache, QueryCache):
            raise InvalidInputError(
                f"query_cache must be a search_r3.query_cache.QueryCache, not {type(query_cache).__name__}."
            )
        base_fields = set(BaseEmbedding.model_fields)
        # HuggingFaceEmbedding passes loader keywords flat (**model_kwargs); keep them apart from
        # BaseEmbedding's own fields.
        flat = {k: kwargs.pop(k) for k in list(kwargs) if k not in base_fields}
        load = loader_kwargs(
            {**(model_kwargs or {}), **flat},
            device=device,
            dtype=dtype,
            max_reasoning_tokens=max_reasoning_tokens,
            batch_size=embed_batch_size,
        )
        # model_name: what to_dict() writes, so from_dict() reloads the same model.
        source = model if model is not None else kwargs.get("model_name") or os.environ.get(MODEL_ENV_VAR)
        if source is None or (isinstance(source, str) and not source.strip()):
            raise SearchR3Error(
                "SearchR3Embedding needs a model: pass model='path/or/hub-id' (or a loaded "
                f"search_r3.ReasoningEmbeddings), or set the {MODEL_ENV_VAR} environment variable."
            )
        if isinstance(source, ReasoningEmbeddings):
            loaded = source
            name = model_name_of(source) or "search-r3"
            device = device or str(source.device)
            dtype = dtype or str(next(source.model.parameters()).dtype)
        else:
            name = str(source)
            loaded = ReasoningEmbeddings.from_pretrained(name, **load)
            device = load.get("device") or str(loaded.device)
            dtype = load.get("dtype") or str(next(loaded.model.parameters()).dtype)
        kwargs["model_name"] = name
        explicit = {"device", "dtype", "max_reasoning_tokens", "batch_size"}  # fields of their own
        stored = {k: v for k, v in load.items() if k not in explicit}
        super().__init__(
            reasoning=reasoning,
            max_reasoning_tokens=max_reasoning_tokens,
            device=str(device),
            dtype=dtype_name(dtype),
            model_kwargs=stored,
            embed_batch_size=embed_batch_size,
            show_progress_bar=show_progress_bar,
            **kwargs,
        )
        self._model = loaded
        self._query_cache = query_cache

    @classmethod
    def class_name(cls) -> str:
        return "SearchR3Embedding"

    @property
    def client(self) -> ReasoningEmbeddings:
        """The underlying `search_r3.ReasoningEmbeddings`."""
        return self._model

    @property
    def query_cache(self) -> QueryCache | None:
        """The `QueryCache` queries are looked up in first (``None``: every query reasons)."""
        return self._query_cache

    @property
    def recent_reasoning(self) -> RecentReasoning:
        """Reasoning of the latest queries, taken once by a linked ``SearchR3SparseEncoder``."""
        return self._recent

    @property
    def embedding_dimension(self) -> int:
        """Vector size, read from the model config (no forward pass)."""
        return self._model.embedding_dimension

    # -- queries: reasoning, then the embedding -------------------------------------------------
    def encode_queries(self, queries: Sequence[str]) -> QueryEncodings:
        """Several queries in one batched call: vectors, reasoning texts and ``forced`` flags.

        Every query path (single, batched, async) goes through here; a retriever listening
        with `capture_query_encodings` receives the result.
        """
        options: dict[str, Any] = {
            "reasoning": self.reasoning,
            "max_reasoning_tokens": self.max_reasoning_tokens,
            "batch_size": self.embed_batch_size,
            "show_progress_bar": self.show_progress_bar,
        }
        if self._query_cache is None:
            encoded = self._model.encode_queries(list(queries), **options)
        else:  # only the queries the cache does not hold reason, in one batched call
            encoded = self._query_cache.encode_queries(self._model, list(queries), **options)
        sink = _capture.get()
        if sink is not None:
            sink.append(encoded)
        for query, reasoning in zip(queries, encoded.reasoning, strict=False):
            if reasoning:
                self._recent.put(query, reasoning)  # for a linked SearchR3SparseEncoder
        return encoded

    def encode_query(self, query: str) -> QueryEncodings:
        """One query's embedding with its reasoning text and whether the budget forced the token."""
        return self.encode_queries([query])

    def get_query_embedding_batch(self, queries: Sequence[str]) -> list[Embedding]:
        """Embed several queries in one batched generation (faster than one call each)."""
        return self._with_events(list(queries), lambda: self.encode_queries(queries).embeddings.tolist())

    async def aget_query_embedding_batch(self, queries: Sequence[str]) -> list[Embedding]:
        """Async `get_query_embedding_batch`: one batched call in a worker thread."""
        # to_thread copies the context, so a capture set by the caller still receives the encoding.
        return await asyncio.to_thread(self.get_query_embedding_batch, queries)

    def get_agg_embedding_from_queries(
        self, queries: list[str], agg_fn: Callable[..., Embedding] | None = None
    ) -> Embedding:
        """Aggregate embedding of several queries, reasoned about in one batched call."""
        if len(queries) < 2:  # one query: LlamaIndex's own path (instrumentation, cache)
            return super().get_agg_embedding_from_queries(queries, agg_fn)
        return (agg_fn or mean_agg)(self.get_query_embedding_batch(queries))

    async def aget_agg_embedding_from_queries(
        self, queries: list[str], agg_fn: Callable[..., Embedding] | None = None
    ) -> Embedding:
        """Async `get_agg_embedding_from_queries` (one batched call in a worker thread)."""
        if len(queries) < 2:
            return await super().aget_agg_embedding_from_queries(queries, agg_fn)
        return (agg_fn or mean_agg)(await self.aget_query_embedding_batch(queries))

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.encode_query(query).embeddings[0].tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    # -- texts: one forward pass per batch, no reasoning ----------------------------------------
    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._model.encode_documents(
            texts, batch_size=self.embed_batch_size, show_progress_bar=self.show_progress_bar
        ).tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """All texts in one `encode_documents` call in a worker thread.

        LlamaIndex's default splits them into ``embed_batch_size`` chunks encoded concurrently,
        which on one device only competes for it; the core batches by length itself. With an
        ``embeddings_cache`` set, LlamaIndex's own cached path runs instead.
        """
        if self.embeddings_cache is not None or not texts:
            return await super().aget_text_embedding_batch(texts, show_progress=show_progress, **kwargs)
        payload = self.to_payload()
        event_id = self.callback_manager.on_event_start(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        )
        vectors = await self._aget_text_embeddings(texts)
        self.callback_manager.on_event_end(
            CBEventType.EMBEDDING,
            payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: vectors},
            event_id=event_id,
        )
        return vectors

    def _with_events(self, chunks: list[str], compute: Callable[[], list[Embedding]]) -> list[Embedding]:
        """``compute()`` inside one EMBEDDING callback event, as LlamaIndex reports embeddings."""
        event_id = self.callback_manager.on_event_start(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}
        )
        vectors = compute()
        self.callback_manager.on_event_end(
            CBEventType.EMBEDDING,
            payload={EventPayload.CHUNKS: chunks, EventPayload.EMBEDDINGS: vectors},
            event_id=event_id,
        )
        return vectors
