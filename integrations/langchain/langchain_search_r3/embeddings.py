"""``SearchR3Embeddings``: search-r3 reasoning embeddings behind LangChain's ``Embeddings`` interface."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from search_r3 import QueryEncodings, ReasoningEmbeddings, SearchR3Error
from search_r3.sparse import RecentReasoning

#: Environment variable read when no ``model`` is given (a local folder or a Hub id).
MODEL_ENV_VAR = "SEARCH_R3_MODEL"


class SearchR3Embeddings(BaseModel, Embeddings):
    """search-r3 embeddings for LangChain.

    ``embed_query`` lets the model reason about the query before it embeds it (one short greedy
    generation, so the same query always gives the same vector); ``embed_documents`` embeds in
    one forward pass, without reasoning. Any LangChain vector store or retriever that takes an
    ``Embeddings`` object works with it.

    Args:
        model: A local search-r3 folder, a Hugging Face Hub id, or an already loaded
            :class:`search_r3.ReasoningEmbeddings` (shared, never modified). Default: the
            ``SEARCH_R3_MODEL`` environment variable.
        reasoning: Reason before embedding a query (``False``: one forward pass, like documents;
            default: the model's own setting, which is on).
        max_reasoning_tokens: Budget of reasoning tokens per query (default: the model's).
        device, dtype: Where and in which precision to load ``model`` when it is a path.
        batch_size: Texts per forward pass when embedding documents.
        model_kwargs: Further :meth:`ReasoningEmbeddings.from_pretrained` arguments
            (``revision``, ``token``, ``local_files_only``, ``max_length``...).
        show_progress: Show a progress bar while embedding documents.

    Example:
        >>> from langchain_search_r3 import SearchR3Embeddings
        >>> emb = SearchR3Embeddings(model="path/to/search-r3-model", max_reasoning_tokens=64)
        >>> doc_vectors = emb.embed_documents(["Paris is the capital of France."])
        >>> query_vector = emb.embed_query("which city hosts the Louvre?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    model: str | Path | ReasoningEmbeddings | None = None
    reasoning: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
    device: str | None = None
    dtype: str | None = None
    batch_size: int = Field(default=16, ge=1)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    show_progress: bool = False

    _client: ReasoningEmbeddings = PrivateAttr()
    _recent: RecentReasoning = PrivateAttr(default_factory=RecentReasoning)

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
            self._client = ReasoningEmbeddings.from_pretrained(
                self.model,
                device=self.device,
                dtype=self.dtype,
                max_reasoning_tokens=self.max_reasoning_tokens,
                batch_size=self.batch_size,
                **self.model_kwargs,
            )
        return self

    @property
    def client(self) -> ReasoningEmbeddings:
        """The underlying :class:`search_r3.ReasoningEmbeddings`."""
        return self._client

    @property
    def embedding_dimension(self) -> int:
        """Vector size, read from the model config: no forward pass, no generation.

        Use it to create a vector store collection up front instead of letting the store embed
        a probe text to learn the size.
        """
        return self._client.embedding_dimension

    # -- documents: one forward pass, no reasoning ----------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents without reasoning."""
        vectors = self._client.encode_documents(
            texts, batch_size=self.batch_size, show_progress_bar=self.show_progress
        )
        return vectors.tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (runs in a worker thread; the model releases the GIL)."""
        return await run_in_executor(None, self.embed_documents, texts)

    # -- queries: reasoning, then the embedding -------------------------------------------------
    def encode_query(self, text: str) -> QueryEncodings:
        """One query's embedding with its reasoning text and whether the budget forced the token.

        This is the single place a query is reasoned about; :meth:`embed_query` returns only the
        vector of the same call.
        """
        encoded = self._client.encode_queries(
            [text], reasoning=self.reasoning, max_reasoning_tokens=self.max_reasoning_tokens
        )
        if encoded.reasoning and encoded.reasoning[0]:
            self._recent.put(text, encoded.reasoning[0])  # for a linked SearchR3SparseEmbeddings
        return encoded

    @property
    def recent_reasoning(self) -> RecentReasoning:
        """Reasoning of the latest queries, taken once by a linked ``SearchR3SparseEmbeddings``."""
        return self._recent

    def embed_query(self, text: str) -> list[float]:
        """Embed a query, after reasoning about it when ``reasoning`` is on."""
        return self.encode_query(text).embeddings[0].tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query` (runs in a worker thread)."""
        return await run_in_executor(None, self.embed_query, text)
