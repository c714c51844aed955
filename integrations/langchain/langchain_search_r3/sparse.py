"""``SearchR3SparseEmbeddings``: BM25 sparse vectors for ``langchain_qdrant``'s hybrid retrieval mode."""

from __future__ import annotations

from typing import Any

from langchain_search_r3.embeddings import SearchR3Embeddings
from search_r3.errors import SearchR3Error
from search_r3.sparse import Bm25Settings, SparseEncoder

try:
    from langchain_qdrant import SparseEmbeddings, SparseVector
except ImportError as exc:  # pragma: no cover - the [qdrant] extra is missing
    raise SearchR3Error(
        'SearchR3SparseEmbeddings needs langchain-qdrant: pip install "langchain-search-r3[qdrant]"'
    ) from exc


class SearchR3SparseEmbeddings(SparseEmbeddings):
    """BM25 sparse vectors (Qdrant's tokenizer and token ids), expanded with search-r3's reasoning.

    Documents get BM25 term weights with length saturation; Qdrant adds the IDF, so the
    collection's sparse vector needs ``modifier=IDF`` (pass `sparse_vector_params` to
    ``QdrantVectorStore.from_texts``, or create the collection with it). Queries get their
    tokens; linked to a `SearchR3Embeddings` (``embeddings=``), a query's sparse vector
    also holds the tokens of the reasoning the dense side wrote for it, weighted below the
    query's own, and the model still reasons once per query.

    Args:
        embeddings: The dense search-r3 embeddings of the same store, whose query reasoning
            expands the sparse query (``None``: no expansion).
        expand: Add the reasoning's tokens to the query (needs ``embeddings``).
        query_weight: Weight of each token of the query.
        reasoning_weight: Weight of each token of the reasoning (below the query's own).
        settings: BM25 parameters (default: Qdrant's, English).

    Example:
        ```python
        from langchain_qdrant import QdrantVectorStore, RetrievalMode
        from langchain_search_r3 import SearchR3Embeddings, SearchR3SparseEmbeddings

        dense = SearchR3Embeddings(model="search-r3-smollm2-135m")
        sparse = SearchR3SparseEmbeddings(embeddings=dense)
        store = QdrantVectorStore.from_texts(
            texts,
            dense,
            sparse_embedding=sparse,
            retrieval_mode=RetrievalMode.HYBRID,
            sparse_vector_params=sparse.sparse_vector_params(),
            location=":memory:",
        )
        docs = store.similarity_search("wing lift at high angles", k=4)
        ```
    """

    def __init__(
        self,
        embeddings: SearchR3Embeddings | None = None,
        *,
        expand: bool = True,
        query_weight: float = 1.0,
        reasoning_weight: float = 0.25,
        settings: Bm25Settings | None = None,
    ) -> None:
        self.embeddings = embeddings
        self.expand = expand
        self.query_weight = query_weight
        self.reasoning_weight = reasoning_weight
        self.encoder = SparseEncoder(settings)

    @staticmethod
    def sparse_vector_params() -> dict[str, Any]:
        """``sparse_vector_params`` for ``QdrantVectorStore.from_texts``: Qdrant computes the IDF."""
        from qdrant_client import models

        return {"modifier": models.Modifier.IDF}

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """BM25 term weights of each text."""
        return [_langchain(v) for v in self.encoder.encode_documents(texts)]

    def embed_query(self, text: str) -> SparseVector:
        """The query's tokens, plus its reasoning's (taken from the dense side's call) when expanding."""
        return _langchain(
            self.encoder.encode_query(
                text,
                self._reasoning(text),
                query_weight=self.query_weight,
                reasoning_weight=self.reasoning_weight,
            )
        )

    def _reasoning(self, text: str) -> str | None:
        if self.embeddings is None or not self.expand:
            return None
        reasoning = self.embeddings.recent_reasoning.take(text)
        if reasoning is None:  # no dense embedding of this query just now (sparse-only search)
            self.embeddings.encode_query(text)
            reasoning = self.embeddings.recent_reasoning.take(text)
        return reasoning or None


def _langchain(vector: Any) -> SparseVector:
    return SparseVector(indices=list(vector.indices), values=list(vector.values))
