"""``SearchR3Embedding``: search-r3 reasoning embeddings behind LlamaIndex's ``BaseEmbedding``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from search_r3 import QueryEncodings, ReasoningEmbeddings, SearchR3Error
from search_r3.sparse import RecentReasoning
from search_r3.store import model_name_of

#: Environment variable read when no ``model`` is given (a local folder or a Hub id).
MODEL_ENV_VAR = "SEARCH_R3_MODEL"

# Where query encodings go while a retriever listens (see :func:`capture_query_encodings`).
# Context-local, so concurrent queries in other threads or tasks never see each other's reasoning.
_capture: ContextVar[list[QueryEncodings] | None] = ContextVar("search_r3_query_capture", default=None)


@contextmanager
def capture_query_encodings() -> Iterator[list[QueryEncodings]]:
    """Collect the :class:`~search_r3.QueryEncodings` of every query a :class:`SearchR3Embedding`
    embeds inside the block, in this context only.

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

    Args:
        model: A local search-r3 folder, a Hugging Face Hub id, or a loaded
            :class:`search_r3.ReasoningEmbeddings` (shared, never modified). Default: the
            ``model_name`` keyword (as ``to_dict()`` writes it), then the ``SEARCH_R3_MODEL``
            environment variable.
        reasoning: Reason before embedding a query (default: the model's setting, which is on).
        max_reasoning_tokens: Budget of reasoning tokens per query (default: the model's).
        device, dtype: Where and in which precision to load ``model`` when it is a path.
        model_kwargs: Further :meth:`ReasoningEmbeddings.from_pretrained` arguments.
        embed_batch_size: Texts per forward pass.

    Example:
        >>> from llama_index.embeddings.search_r3 import SearchR3Embedding
        >>> embed_model = SearchR3Embedding(model="path/to/search-r3-model", max_reasoning_tokens=64)
        >>> vector = embed_model.get_query_embedding("which city hosts the Louvre?")
    """

    reasoning: bool | None = Field(default=None, description="Reason before embedding a query.")
    max_reasoning_tokens: int | None = Field(
        default=None, ge=0, description="Reasoning token budget per query (None: the model's)."
    )

    _model: ReasoningEmbeddings = PrivateAttr()
    _recent: RecentReasoning = PrivateAttr(default_factory=RecentReasoning)

    def __init__(
        self,
        model: str | Path | ReasoningEmbeddings | None = None,
        *,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        embed_batch_size: int = 16,
        **kwargs: Any,
    ) -> None:
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
        else:
            name = str(source)
            loaded = ReasoningEmbeddings.from_pretrained(
                name,
                device=device,
                dtype=dtype,
                max_reasoning_tokens=max_reasoning_tokens,
                batch_size=embed_batch_size,
                **(model_kwargs or {}),
            )
        kwargs.setdefault("model_name", name)
        super().__init__(
            reasoning=reasoning,
            max_reasoning_tokens=max_reasoning_tokens,
            embed_batch_size=embed_batch_size,
            **kwargs,
        )
        self._model = loaded

    @classmethod
    def class_name(cls) -> str:
        return "SearchR3Embedding"

    @property
    def client(self) -> ReasoningEmbeddings:
        """The underlying :class:`search_r3.ReasoningEmbeddings`."""
        return self._model

    @property
    def recent_reasoning(self) -> RecentReasoning:
        """Reasoning of the latest queries, taken once by a linked ``SearchR3SparseEncoder``."""
        return self._recent

    @property
    def embedding_dimension(self) -> int:
        """Vector size, read from the model config (no forward pass)."""
        return self._model.embedding_dimension

    # -- queries: reasoning, then the embedding -------------------------------------------------
    def encode_query(self, query: str) -> QueryEncodings:
        """One query's embedding with its reasoning text and whether the budget forced the token."""
        return self._model.encode_queries(
            [query], reasoning=self.reasoning, max_reasoning_tokens=self.max_reasoning_tokens
        )

    def _get_query_embedding(self, query: str) -> Embedding:
        encoded = self.encode_query(query)
        sink = _capture.get()
        if sink is not None:
            sink.append(encoded)
        if encoded.reasoning and encoded.reasoning[0]:
            self._recent.put(query, encoded.reasoning[0])  # for a linked SearchR3SparseEncoder
        return encoded.embeddings[0].tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        # to_thread copies the context, so a capture set by the caller still receives the encoding.
        return await asyncio.to_thread(self._get_query_embedding, query)

    # -- texts: one forward pass per batch, no reasoning ----------------------------------------
    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._model.encode_documents(texts, batch_size=self.embed_batch_size).tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]
