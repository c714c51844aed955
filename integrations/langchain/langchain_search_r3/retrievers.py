"""``SearchR3Retriever``: reasoning query embedding + search over a search-r3 Qdrant store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from langchain_search_r3.embeddings import SearchR3Embeddings
from search_r3 import InvalidInputError, ReasoningEmbeddings
from search_r3.store import QdrantStore, SearchResult

#: Metadata keys every returned ``Document`` carries (they overwrite stored keys of the same name).
SCORE_KEY = "score"
REASONING_KEY = "reasoning"
FORCED_KEY = "forced"


class SearchR3Retriever(BaseRetriever):
    """Retrieve documents from a search-r3 :class:`~search_r3.store.QdrantStore`.

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

    Example:
        >>> retriever = SearchR3Retriever.from_texts(
        ...     ["Paris is the capital of France.", "Berlin is in Germany."],
        ...     embeddings="path/to/search-r3-model",
        ...     k=1,
        ... )
        >>> docs = retriever.invoke("which city hosts the Louvre?")
        >>> docs[0].metadata["reasoning"]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: QdrantStore
    k: int = Field(default=4, ge=1)
    filter: Any = None
    reasoning: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
    mode: Literal["hybrid", "dense", "sparse"] | None = None
    fusion: Literal["rrf", "dbsf"] | None = None

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
        result = self.store.search(
            query,
            k=k,
            filter=self.filter if filter is None else filter,
            reasoning=self.reasoning if reasoning is None else reasoning,
            max_reasoning_tokens=self.max_reasoning_tokens
            if max_reasoning_tokens is None
            else max_reasoning_tokens,
            mode=self.mode if mode is None else mode,
            fusion=self.fusion if fusion is None else fusion,
        )
        return documents_from_result(result)

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
        ``mode``, ``fusion``);
        a :class:`SearchR3Embeddings` passes on its own ``reasoning`` and budget as defaults.
        With ``url`` the store lives on a Qdrant server instead; ``client`` uses an existing
        ``QdrantClient`` (left open by :meth:`QdrantStore.close`).
        """
        if isinstance(embeddings, SearchR3Embeddings):
            kwargs.setdefault("reasoning", embeddings.reasoning)
            kwargs.setdefault("max_reasoning_tokens", embeddings.max_reasoning_tokens)
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
        """:meth:`from_texts` for LangChain ``Document`` objects (their ids are kept when set)."""
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
