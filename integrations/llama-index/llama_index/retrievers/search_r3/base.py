"""``SearchR3Retriever``: a vector index retriever that returns the query's reasoning with each node."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.indices.vector_store.base import VectorStoreIndex
from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import BasePydanticVectorStore, VectorStoreQueryMode
from llama_index.embeddings.search_r3 import SearchR3Embedding, capture_query_encodings
from search_r3 import QueryEncodings, SearchR3Error

#: Metadata keys added to every returned node (kept out of the LLM and embedding views of the node).
REASONING_KEY = "reasoning"
FORCED_KEY = "forced"

#: ``mode`` values and the vector store query modes they select.
QUERY_MODES = {
    "dense": VectorStoreQueryMode.DEFAULT,
    "sparse": VectorStoreQueryMode.SPARSE,
    "hybrid": VectorStoreQueryMode.HYBRID,
}


class SearchR3Retriever(VectorIndexRetriever):
    """Retrieve nodes from a ``VectorStoreIndex`` built with `SearchR3Embedding`.

    The query is embedded once, through the index's (or the given) embedding model, exactly as
    ``index.as_retriever()`` does; the reasoning the model wrote for it is added to every
    returned node's metadata under ``reasoning`` (and ``forced``: whether the budget ran out
    before the model emitted the embed token). Nodes are copied before annotation, so nodes held
    elsewhere (a docstore) are never modified. A ``QueryBundle`` that already carries an
    embedding is searched as is, without reasoning, and its nodes get no reasoning keys.

    Args:
        index: The index to search.
        embed_model: The query embedding model (default: the index's); must be a
            `SearchR3Embedding`.
        similarity_top_k: Nodes to return.
        mode: ``"dense"``, ``"sparse"`` or ``"hybrid"``: the vector store query mode (sparse and
            hybrid need a hybrid store, e.g. ``QdrantVectorStore(...,
            **SearchR3SparseEncoder(embed_model).vector_store_kwargs())``). Default: dense.
        **kwargs: Further ``VectorIndexRetriever`` arguments (``filters``, ``doc_ids``, ``alpha``...).

    ``aretrieve`` works over every vector store: a ``QdrantVectorStore`` built with only a
    sync ``client`` (as local mode must be: a second, async client cannot open the same folder)
    is searched in a worker thread, so the event loop never blocks and no ``aclient`` is needed.

    Example:
        ```python
        retriever = SearchR3Retriever(index, similarity_top_k=2)
        nodes = retriever.retrieve("which city hosts the Louvre?")
        print(nodes[0].node.metadata["reasoning"])
        nodes = await retriever.aretrieve("which city hosts the Louvre?")
        ```
    """

    def __init__(
        self,
        index: VectorStoreIndex,
        embed_model: SearchR3Embedding | None = None,
        similarity_top_k: int = 4,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if mode is not None:
            if mode not in QUERY_MODES:
                raise SearchR3Error(f"mode must be one of {', '.join(QUERY_MODES)}, not {mode!r}.")
            kwargs.setdefault("vector_store_query_mode", QUERY_MODES[mode])
        embed_model = embed_model or index._embed_model
        if not isinstance(embed_model, SearchR3Embedding):
            raise SearchR3Error(
                f"SearchR3Retriever needs a SearchR3Embedding to embed queries, got "
                f"{type(embed_model).__name__}. Build the index with embed_model=SearchR3Embedding(...) "
                "or pass embed_model=... here."
            )
        if (
            isinstance(similarity_top_k, bool)
            or not isinstance(similarity_top_k, int)
            or similarity_top_k < 1
        ):
            raise SearchR3Error(f"similarity_top_k must be a positive integer, got {similarity_top_k!r}.")
        # The same defaults as VectorStoreIndex.as_retriever.
        kwargs.setdefault("node_ids", list(index.index_struct.nodes_dict.values()))
        kwargs.setdefault("callback_manager", index._callback_manager)
        kwargs.setdefault("object_map", index._object_map)
        super().__init__(index, similarity_top_k=similarity_top_k, embed_model=embed_model, **kwargs)

    @classmethod
    def from_vector_store(
        cls,
        vector_store: BasePydanticVectorStore,
        embed_model: SearchR3Embedding,
        **kwargs: Any,
    ) -> SearchR3Retriever:
        """A retriever over an existing vector store (e.g. a Qdrant collection indexed earlier)."""
        index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
        return cls(index, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with capture_query_encodings() as seen:
            nodes = super()._retrieve(query_bundle)
        return _annotate(nodes, seen)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with capture_query_encodings() as seen:
            if has_async_client(self._vector_store):
                nodes = await super()._aretrieve(query_bundle)
            else:  # the sync search, off the event loop (the context, and so the capture, goes along)
                nodes = await asyncio.to_thread(super()._retrieve, query_bundle)
        return _annotate(nodes, seen)


def has_async_client(vector_store: Any) -> bool:
    """False for a vector store that can only search synchronously.

    ``QdrantVectorStore`` without ``aclient`` raises "Async client is not initialized" from
    ``aquery``; Qdrant's local mode cannot have one next to the sync client (the folder is
    locked, and two ``:memory:`` clients do not share points). Other stores run ``aquery``.
    """
    return getattr(vector_store, "_aclient", True) is not None


def _annotate(nodes: list[NodeWithScore], seen: list[QueryEncodings]) -> list[NodeWithScore]:
    """Copies of ``nodes`` with the query's reasoning in their metadata."""
    if not seen:  # the bundle carried its own embedding (or came from an embeddings cache)
        return nodes
    # One encoding per embedding string; a bundle with several strings gets all reasonings.
    reasoning = "\n\n".join(r for enc in seen for r in enc.reasoning)
    forced = bool(any(f for enc in seen for f in enc.forced))
    annotated = []
    for item in nodes:
        node = item.node.model_copy()
        node.metadata = {**node.metadata, REASONING_KEY: reasoning, FORCED_KEY: forced}
        node.excluded_llm_metadata_keys = _with_hidden(node.excluded_llm_metadata_keys)
        node.excluded_embed_metadata_keys = _with_hidden(node.excluded_embed_metadata_keys)
        annotated.append(NodeWithScore(node=node, score=item.score))
    return annotated


def _with_hidden(keys: list[str]) -> list[str]:
    return [*keys, *(k for k in (REASONING_KEY, FORCED_KEY) if k not in keys)]
