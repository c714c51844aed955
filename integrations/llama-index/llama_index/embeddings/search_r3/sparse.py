"""``SearchR3SparseEncoder``: BM25 sparse functions for LlamaIndex's hybrid ``QdrantVectorStore``."""

from __future__ import annotations

from typing import Any

from llama_index.embeddings.search_r3.base import SearchR3Embedding
from search_r3.sparse import Bm25Settings, SparseEncoder

#: What ``sparse_doc_fn`` / ``sparse_query_fn`` return: token ids and weights per text.
BatchSparse = tuple[list[list[int]], list[list[float]]]


class SearchR3SparseEncoder:
    """BM25 sparse vectors (Qdrant's tokenizer and token ids), expanded with search-r3's reasoning.

    ``doc_fn`` and ``query_fn`` are the ``sparse_doc_fn`` and ``sparse_query_fn`` of
    ``llama_index.vector_stores.qdrant.QdrantVectorStore``; `vector_store_kwargs` gives them
    with ``enable_hybrid=True`` and a sparse vector with ``modifier=IDF`` (documents hold BM25
    term weights; Qdrant adds the IDF). Nothing is downloaded (no FastEmbed model). Linked to
    the index's `SearchR3Embedding` (``embed_model=``), a query's sparse vector also holds
    the tokens of the reasoning the dense side wrote for it, weighted below the query's own; the
    model still reasons once per query (in sparse mode, where LlamaIndex computes no dense
    embedding, the encoder asks the embedding model itself).

    Args:
        embed_model: The dense search-r3 embedding of the same index (``None``: no expansion).
        expand: Add the reasoning's tokens to the query (needs ``embed_model``).
        query_weight: Weight of each token of the query.
        reasoning_weight: Weight of each token of the reasoning (below the query's own).
        settings: BM25 parameters (default: Qdrant's, English).

    Example:
        ```python
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.embeddings.search_r3 import SearchR3Embedding, SearchR3SparseEncoder
        from llama_index.vector_stores.qdrant import QdrantVectorStore

        embed_model = SearchR3Embedding("search-r3-smollm2-135m")
        sparse = SearchR3SparseEncoder(embed_model)
        vector_store = QdrantVectorStore("docs", client=client, **sparse.vector_store_kwargs())
        index = VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=vector_store),
            embed_model=embed_model,
        )
        nodes = index.as_retriever(vector_store_query_mode="hybrid").retrieve("wing lift")
        ```
    """

    def __init__(
        self,
        embed_model: SearchR3Embedding | None = None,
        *,
        expand: bool = True,
        query_weight: float = 1.0,
        reasoning_weight: float = 0.25,
        settings: Bm25Settings | None = None,
    ) -> None:
        self.embed_model = embed_model
        self.expand = expand
        self.query_weight = query_weight
        self.reasoning_weight = reasoning_weight
        self.encoder = SparseEncoder(settings)

    def doc_fn(self, texts: list[str]) -> BatchSparse:
        """``sparse_doc_fn``: BM25 term weights of each text."""
        vectors = self.encoder.encode_documents(texts)
        return [v.indices for v in vectors], [v.values for v in vectors]

    def query_fn(self, texts: list[str]) -> BatchSparse:
        """``sparse_query_fn``: each query's tokens, plus its reasoning's when expanding."""
        vectors = [
            self.encoder.encode_query(
                text,
                self._reasoning(text),
                query_weight=self.query_weight,
                reasoning_weight=self.reasoning_weight,
            )
            for text in texts
        ]
        return [v.indices for v in vectors], [v.values for v in vectors]

    def vector_store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make a ``QdrantVectorStore`` hybrid with this encoder."""
        from qdrant_client import models

        return {
            "enable_hybrid": True,
            "sparse_doc_fn": self.doc_fn,
            "sparse_query_fn": self.query_fn,
            "sparse_config": models.SparseVectorParams(modifier=models.Modifier.IDF),
        }

    def _reasoning(self, text: str) -> str | None:
        if self.embed_model is None or not self.expand:
            return None
        reasoning = self.embed_model.recent_reasoning.take(text)
        if reasoning is None:
            # No dense embedding of this query just now: sparse mode (LlamaIndex skips the dense
            # side) or a QueryBundle that carried its own vector. Reason here, through the same
            # path as the dense side, so a SearchR3Retriever still sees the reasoning.
            self.embed_model.get_query_embedding(text)
            reasoning = self.embed_model.recent_reasoning.take(text)
        return reasoning or None
