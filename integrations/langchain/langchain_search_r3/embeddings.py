"""``SearchR3Embeddings``: search-r3 reasoning embeddings behind LangChain's ``Embeddings`` interface."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from search_r3 import InvalidInputError, QueryEncodings, ReasoningEmbeddings, SearchR3Error
from search_r3.framework_options import check_keys, l2_normalize, loader_kwargs
from search_r3.query_cache import QueryCache
from search_r3.settings import DEFAULT_BATCH_SIZE
from search_r3.sparse import RecentReasoning

#: Environment variable read when no ``model`` is given (a local folder or a Hub id).
MODEL_ENV_VAR = "SEARCH_R3_MODEL"

#: ``encode_kwargs`` keys (``HuggingFaceEmbeddings`` style) that apply to documents and queries.
SHARED_ENCODE_KEYS = frozenset({"batch_size", "show_progress_bar", "normalize_embeddings"})
#: Keys that only documents take (queries go through generation, not token-bounded batches).
DOCUMENT_ENCODE_KEYS = SHARED_ENCODE_KEYS | {"max_batch_tokens"}
#: Keys that only queries take (``query_encode_kwargs``): sampling instead of greedy reasoning.
QUERY_ENCODE_KEYS = SHARED_ENCODE_KEYS | {"do_sample", "temperature", "top_p", "seed"}


class SearchR3Embeddings(BaseModel, Embeddings):
    """search-r3 embeddings for LangChain.

    ``embed_query`` lets the model reason about the query before it embeds it (one short greedy
    generation, so the same query always gives the same vector); ``embed_documents`` embeds in
    one forward pass, without reasoning. Any LangChain vector store or retriever that takes an
    ``Embeddings`` object works with it.

    The ``HuggingFaceEmbeddings`` idioms work unchanged: ``model_name=`` is an alias of
    ``model``, ``model_kwargs`` go to the loader (``{"device": "cpu"}``), ``encode_kwargs`` to
    every encoding call (``{"batch_size": 32, "normalize_embeddings": True}``) and
    ``query_encode_kwargs`` to query encoding only.

    Args:
        model: A local search-r3 folder, a Hugging Face Hub id, or an already loaded
            [`ReasoningEmbeddings`][search_r3.ReasoningEmbeddings] (shared, never modified).
            Default: the ``SEARCH_R3_MODEL`` environment variable. ``model_name`` is accepted
            as an alias.
        reasoning: Reason before embedding a query (``False``: one forward pass, like documents;
            default: the model's own setting, which is on).
        max_reasoning_tokens: Budget of reasoning tokens per query (default: the model's).
        device: Where to load ``model`` when it is a path (default: the best device here).
        dtype: Precision to load ``model`` in (default: bfloat16 on GPUs that support it,
            float32 otherwise).
        batch_size: Texts per forward pass (documents) or per generation batch (queries);
            default `search_r3.settings.DEFAULT_BATCH_SIZE`.
        model_kwargs: Further `ReasoningEmbeddings.from_pretrained` arguments (``device``,
            ``dtype`` or ``torch_dtype``, ``revision``, ``token``, ``local_files_only``,
            ``max_length``...).
        encode_kwargs: Keyword arguments for every encoding call: ``batch_size``,
            ``show_progress_bar``, ``normalize_embeddings``, and for documents
            ``max_batch_tokens``.
        query_encode_kwargs: Keyword arguments for query encoding only (they override
            ``encode_kwargs``): the shared ones, and ``do_sample``, ``temperature``, ``top_p``,
            ``seed`` to sample the reasoning instead of greedy decoding.
        show_progress: Show a progress bar while embedding.
        query_cache: A [`QueryCache`][search_r3.query_cache.QueryCache] to look queries up in
            before reasoning: a repeated query (same model weights, text and reasoning settings)
            gets the very same vector back without generating. Share one object between
            embeddings, retrievers and LlamaIndex models; ``QueryCache(path=...)`` keeps it on
            disk. Default: none (the core's own ``query_cache``, if the loaded model has one).

    Example:
        ```python
        from langchain_search_r3 import SearchR3Embeddings

        emb = SearchR3Embeddings(model_name="search-r3-smollm2-135m", model_kwargs={"device": "cpu"})
        doc_vectors = emb.embed_documents(["Paris is the capital of France."])
        query_vector = emb.embed_query("which city hosts the Louvre?")
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    model: str | Path | ReasoningEmbeddings | None = None
    reasoning: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
    device: str | None = None
    dtype: str | None = None
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    query_encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    show_progress: bool = False
    query_cache: QueryCache | None = None

    _client: ReasoningEmbeddings = PrivateAttr()
    _recent: RecentReasoning = PrivateAttr(default_factory=RecentReasoning)

    def __init__(self, **data: Any) -> None:
        # Argument checks run before pydantic, so a mistake is one search-r3 error, not a
        # ValidationError wrapping it.
        if "model_name" in data:
            data = dict(data)
            name = data.pop("model_name")
            if data.get("model") is not None and data["model"] != name:
                raise InvalidInputError(
                    f"model={data['model']!r} and model_name={name!r} disagree; pass only one."
                )
            data["model"] = name
        cache = data.get("query_cache")
        if cache is not None and not isinstance(cache, QueryCache):
            raise InvalidInputError(
                f"query_cache must be a search_r3.query_cache.QueryCache, not {type(cache).__name__}."
            )
        check_keys("encode_kwargs", data.get("encode_kwargs") or {}, DOCUMENT_ENCODE_KEYS)
        check_keys("query_encode_kwargs", data.get("query_encode_kwargs") or {}, QUERY_ENCODE_KEYS)
        explicit = ("device", "dtype", "max_reasoning_tokens", "batch_size")
        loader_kwargs(data.get("model_kwargs") or {}, **{k: data.get(k) for k in explicit})
        super().__init__(**data)

    @model_validator(mode="after")
    def _load(self) -> SearchR3Embeddings:
        source = self.model if self.model is not None else os.environ.get(MODEL_ENV_VAR)
        if source is None or (isinstance(source, str) and not source.strip()):
            raise SearchR3Error(
                "SearchR3Embeddings needs a model: pass model='path/or/hub-id' (or a loaded "
                f"search_r3.ReasoningEmbeddings), or set the {MODEL_ENV_VAR} environment variable."
            )
        if isinstance(source, ReasoningEmbeddings):
            self._client = source
        else:
            self.model = str(source)
            load = loader_kwargs(
                self.model_kwargs,
                device=self.device,
                dtype=self.dtype,
                max_reasoning_tokens=self.max_reasoning_tokens,
                # the default batch size yields to a batch_size in model_kwargs; one given twice is an error
                batch_size=self.batch_size if "batch_size" in self.model_fields_set else None,
            )
            load.setdefault("batch_size", self.batch_size)
            self.device, self.dtype = load.get("device"), load.get("dtype")
            self._client = ReasoningEmbeddings.from_pretrained(self.model, **load)
        return self

    @property
    def client(self) -> ReasoningEmbeddings:
        """The underlying `search_r3.ReasoningEmbeddings`."""
        return self._client

    @property
    def model_name(self) -> str:
        """The model's name or path (the ``HuggingFaceEmbeddings`` attribute)."""
        if isinstance(self.model, ReasoningEmbeddings) or self.model is None:
            return str(getattr(self._client.model.config, "_name_or_path", "") or "search-r3")
        return str(self.model)

    @property
    def embedding_dimension(self) -> int:
        """Vector size, read from the model config: no forward pass, no generation.

        Use it to create a vector store collection up front instead of letting the store embed
        a probe text to learn the size.
        """
        return self._client.embedding_dimension

    # -- documents: one forward pass, no reasoning ----------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents without reasoning, in one batched call."""
        options = {"batch_size": self.batch_size, "show_progress_bar": self.show_progress}
        options.update(self.encode_kwargs)
        normalize = options.pop("normalize_embeddings", False)
        vectors = self._client.encode_documents(texts, **options)
        return _finish(vectors, normalize).tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async `embed_documents`: the same single batched call, in a worker thread."""
        return await run_in_executor(None, self.embed_documents, texts)

    # -- queries: reasoning, then the embedding -------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> QueryEncodings:
        """Several queries in one batched call: vectors, reasoning texts and ``forced`` flags.

        This is the one place queries are reasoned about; every other query method (single,
        batched, async) goes through it.
        """
        options = self._query_options()
        normalize = options.pop("normalize_embeddings", False)
        encoded = encode_queries_cached(
            self._client,
            list(texts),
            self.query_cache,
            reasoning=self.reasoning,
            max_reasoning_tokens=self.max_reasoning_tokens,
            **options,
        )
        if normalize:
            encoded = dataclasses.replace(encoded, embeddings=_finish(encoded.embeddings, True))
        for text, reasoning in zip(texts, encoded.reasoning, strict=False):
            if reasoning:
                self._recent.put(text, reasoning)  # for a linked SearchR3SparseEmbeddings
        return encoded

    def encode_query(self, text: str) -> QueryEncodings:
        """One query's embedding with its reasoning text and whether the budget forced the token.

        `embed_query` returns only the vector of the same call.
        """
        return self.encode_queries([text])

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed several queries in one batched generation (faster than one call each)."""
        return self.encode_queries(texts).embeddings.tolist()

    @property
    def recent_reasoning(self) -> RecentReasoning:
        """Reasoning of the latest queries, taken once by a linked ``SearchR3SparseEmbeddings``."""
        return self._recent

    def embed_query(self, text: str) -> list[float]:
        """Embed a query, after reasoning about it when ``reasoning`` is on."""
        return self.encode_query(text).embeddings[0].tolist()

    async def aencode_queries(self, texts: Sequence[str]) -> QueryEncodings:
        """Async `encode_queries` (one batched call in a worker thread)."""
        return await run_in_executor(None, self.encode_queries, texts)

    async def aembed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Async `embed_queries` (one batched call in a worker thread)."""
        return await run_in_executor(None, self.embed_queries, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async `embed_query` (runs in a worker thread; the model releases the GIL)."""
        return await run_in_executor(None, self.embed_query, text)

    def _query_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"batch_size": self.batch_size, "show_progress_bar": self.show_progress}
        options.update({k: v for k, v in self.encode_kwargs.items() if k in SHARED_ENCODE_KEYS})
        options.update(self.query_encode_kwargs)
        return options


def encode_queries_cached(
    client: ReasoningEmbeddings, texts: Sequence[str], query_cache: QueryCache | None, **options: Any
) -> QueryEncodings:
    """``client.encode_queries(texts, **options)``, through ``query_cache`` when one is given.

    Only the queries the cache does not hold are encoded, in one batched call.
    """
    if query_cache is None:
        return client.encode_queries(list(texts), **options)
    return query_cache.encode_queries(client, list(texts), **options)


def _finish(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    """``vectors``, L2-normalised per row when asked (``normalize_embeddings=True``)."""
    return l2_normalize(vectors) if normalize else vectors
