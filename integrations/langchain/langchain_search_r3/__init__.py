"""LangChain integration for search-r3 reasoning embeddings.

* `SearchR3Embeddings`: an ``Embeddings`` whose query embedding reasons first.
* `SearchR3Retriever`: a ``BaseRetriever`` over a search-r3 Qdrant store that returns the
  query's reasoning with every document.
* `SearchR3SparseEmbeddings`: BM25 sparse vectors for ``langchain_qdrant``'s hybrid mode,
  expanded with the query's reasoning (needs ``langchain-qdrant``).
"""

from langchain_search_r3.embeddings import SearchR3Embeddings
from langchain_search_r3.retrievers import SearchR3Retriever

__version__ = "0.1.0"

__all__ = ["SearchR3Embeddings", "SearchR3Retriever", "SearchR3SparseEmbeddings"]


def __getattr__(name: str) -> object:
    # SearchR3SparseEmbeddings needs langchain-qdrant (the [qdrant] extra): imported on first use.
    if name == "SearchR3SparseEmbeddings":
        from langchain_search_r3.sparse import SearchR3SparseEmbeddings

        return SearchR3SparseEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
