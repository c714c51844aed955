"""``SearchR3Retriever``: reasoning query embedding + search over a search-r3 Qdrant store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field

from langchain_search_r3.embeddings import SearchR3Embeddings, encode_queries_cached
from search_r3 import InvalidInputError, QueryEncodings, ReasoningEmbeddings
from search_r3.query_cache import QueryCache
from search_r3.store import QdrantStore, SearchResult

#: Metadata keys every returned ``Document`` carries (they overwrite stored keys of the same name).
SCORE_KEY = "score"
REASONING_KEY = "reasoning"
FORCED_KEY = "forced"

# Query encodings computed ahead by ``batch``/``abatch`` (one batched call for all inputs), keyed
# by (query, reasoning, budget). Context-local: the worker threads and tasks that LangChain runs
# each input in inherit it; other callers never see it.
_PreEncoded = dict[tuple[str, bool | None, int | None], tuple[Any, str, bool]]
_pre_encoded: ContextVar[_PreEncoded | None] = ContextVar("search_r3_pre_encoded", default=None)


class SearchR3Retriever(BaseRetriever):
    """Retrieve documents from a search-r3 [`QdrantStore`][search_r3.store.QdrantStore].

    Each query is reasoned about and embedded exactly once; the hits come back as
    ``Document`` objects whose metadata holds the stored metadata plus ``score`` (cosine
    similarity), ``reasoning`` (what the model wrote about the query) and ``forced`` (whether
    the reasoning budget ran out before the model emitted the embed token).

    Args:
        store: The store to search (its embeddings model encodes the query).
        k: Documents to return; ``invoke(query, k=...)`` overrides it for one call.
        filter: Qdrant filter applied to every search (``invoke(query, filter=...)`` overrides it).
        reasoning: Reason about the query before embedding it (default: the model's setting).
        max_reasoning_tokens: Reasoning budget per query (default: the model's).
        mode: ``"hybrid"`` (dense + BM25 over the query and its reasoning), ``"dense"`` or
            ``"sparse"`` (default: hybrid for a hybrid store, dense for an older dense-only one);
            ``invoke(query, mode=...)`` overrides it for one call.
        fusion: ``"rrf"`` or ``"dbsf"`` in hybrid mode (default: the store's setting).
        query_cache: A [`QueryCache`][search_r3.query_cache.QueryCache]: a query asked before
            (same model, text and reasoning settings) is searched with its cached vector and
            reasoning, without generating again (default: none; `from_texts` takes the one of
            a `SearchR3Embeddings`).

    ``batch`` and ``abatch`` reason about all their queries in one batched generation (much
    faster than one generation per query), then search each; callbacks still see one run per
    query.

    Example:
        ```python
        retriever = SearchR3Retriever.from_texts(
            ["Paris is the capital of France.", "Berlin is in Germany."],
            embeddings="search-r3-smollm2-135m",
            k=1,
        )
        docs = retriever.invoke("which city hosts the Louvre?")
        print(docs[0].metadata["reasoning"])
        answers = retriever.batch(["capital of Germany?", "capital of France?"])
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: QdrantStore
    k: int = Field(default=4, ge=1)
    filter: Any = None
    reasoning: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
    mode: Literal["hybrid", "dense", "sparse"] | None = None
    fusion: Literal["rrf", "dbsf"] | None = None
    query_cache: QueryCache | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        mode: str | None = None,
        fusion: str | None = None,
    ) -> list[Document]:
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}.")
        reasoning, budget = self._settings(reasoning, max_reasoning_tokens)
        filter = self.filter if filter is None else filter
        mode = self.mode if mode is None else mode
        ready = (_pre_encoded.get() or {}).get((query, reasoning, budget)) if isinstance(query, str) else None
        if ready is None and self.query_cache is not None:
            encoded = encode_queries_cached(
                self.store.embeddings,
                [query],
                self.query_cache,
                reasoning=reasoning,
                max_reasoning_tokens=budget,
            )
            ready = (encoded.embeddings[0], encoded.reasoning[0], bool(encoded.forced[0]))
        if ready is not None:  # encoded already (a batch or the cache): no second generation
            vector, reasoning_text, forced = ready
            result = self.store.search_encoded(
                query,
                vector,
                k,
                reasoning=reasoning_text,
                forced=forced,
                mode=mode,
                filter=filter,
                fusion=self.fusion if fusion is None else fusion,
            )
        else:
            result = self.store.search(
                query,
                k=k,
                filter=filter,
                reasoning=reasoning,
                max_reasoning_tokens=budget,
                mode=mode,
                fusion=self.fusion if fusion is None else fusion,
            )
        return documents_from_result(result)

    def _settings(
        self, reasoning: bool | None, max_reasoning_tokens: int | None
    ) -> tuple[bool | None, int | None]:
        return (
            self.reasoning if reasoning is None else reasoning,
            self.max_reasoning_tokens if max_reasoning_tokens is None else max_reasoning_tokens,
        )

    # -- batches: one batched generation for all queries ------------------------------------------
    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[list[Document]]:
        """Retrieve for several queries; all are reasoned about in one batched generation."""
        with self._using(self._encode_all(inputs, kwargs)):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[list[Document]]:
        """Async `batch`: the one batched generation runs in a worker thread."""
        encoded = await asyncio.to_thread(self._encode_all, inputs, kwargs)
        with self._using(encoded):
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    def _encode_all(self, inputs: Sequence[Any], kwargs: dict[str, Any]) -> _PreEncoded:
        """Encodings of the distinct valid queries among ``inputs``, from one ``encode_queries`` call.

        Invalid inputs are left out: each fails on its own in ``invoke``, with its own error.
        """
        reasoning, budget = self._settings(kwargs.get("reasoning"), kwargs.get("max_reasoning_tokens"))
        queries = list(dict.fromkeys(q for q in inputs if isinstance(q, str) and q.strip()))
        if len(queries) < 2:
            return {}
        encoded: QueryEncodings = encode_queries_cached(
            self.store.embeddings, queries, self.query_cache, reasoning=reasoning, max_reasoning_tokens=budget
        )
        return {
            (q, reasoning, budget): (encoded.embeddings[i], encoded.reasoning[i], bool(encoded.forced[i]))
            for i, q in enumerate(queries)
        }

    @staticmethod
    @contextmanager
    def _using(encoded: _PreEncoded) -> Iterator[None]:
        token = _pre_encoded.set({**(_pre_encoded.get() or {}), **encoded})
        try:
            yield
        finally:
            _pre_encoded.reset(token)

    # -- construction helpers -----------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        embeddings: SearchR3Embeddings | ReasoningEmbeddings | str | Path,
        metadatas: Sequence[dict[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        collection_name: str = "search_r3",
        path: str | Path | None = ":memory:",
        url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        **kwargs: Any,
    ) -> SearchR3Retriever:
        """Build a store (local ``:memory:`` by default), add ``texts`` and return a retriever on it.

        ``kwargs`` are retriever fields (``k``, ``filter``, ``reasoning``, ``max_reasoning_tokens``,
        ``mode``, ``fusion``, ``query_cache``);
        a `SearchR3Embeddings` passes on its own ``reasoning``, budget and ``query_cache`` as
        defaults.
        With ``url`` the store lives on a Qdrant server instead; ``client`` uses an existing
        ``QdrantClient`` (left open by `QdrantStore.close`).
        """
        if isinstance(embeddings, SearchR3Embeddings):
            kwargs.setdefault("reasoning", embeddings.reasoning)
            kwargs.setdefault("max_reasoning_tokens", embeddings.max_reasoning_tokens)
            kwargs.setdefault("query_cache", embeddings.query_cache)
        model = _reasoning_embeddings(embeddings)
        location: dict[str, Any]
        if client is not None:
            location = {"client": client}
        elif url:
            location = {"url": url, "api_key": api_key}
        else:
            location = {"path": path}
        store = QdrantStore(model, collection_name, **location)
        store.add_documents(list(texts), ids=ids, metadatas=metadatas)
        return cls(store=store, **kwargs)

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        embeddings: SearchR3Embeddings | ReasoningEmbeddings | str | Path,
        **kwargs: Any,
    ) -> SearchR3Retriever:
        """`from_texts` for LangChain ``Document`` objects (their ids are kept when set)."""
        ids = [d.id for d in documents]
        return cls.from_texts(
            [d.page_content for d in documents],
            embeddings,
            metadatas=[dict(d.metadata) for d in documents],
            ids=ids if all(ids) else None,
            **kwargs,
        )


def documents_from_result(result: SearchResult) -> list[Document]:
    """LangChain documents for a store search result, with score and the query's reasoning."""
    return [
        Document(
            id=hit.id,
            page_content=hit.text,
            metadata={
                **hit.metadata,
                SCORE_KEY: hit.score,
                REASONING_KEY: result.reasoning,
                FORCED_KEY: result.forced,
            },
        )
        for hit in result.hits
    ]


def _reasoning_embeddings(
    embeddings: SearchR3Embeddings | ReasoningEmbeddings | str | Path,
) -> ReasoningEmbeddings:
    if isinstance(embeddings, SearchR3Embeddings):
        return embeddings.client
    if isinstance(embeddings, ReasoningEmbeddings):
        return embeddings
    return SearchR3Embeddings(model=embeddings).client
