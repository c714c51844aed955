"""LangChain integration for search-r3 reasoning embeddings.

* `SearchR3Embeddings`: an ``Embeddings`` whose query embedding reasons first.
* `SearchR3Retriever`: a ``BaseRetriever`` over a search-r3 Qdrant store that returns the
  query's reasoning with every document.
"""

from langchain_search_r3.embeddings import SearchR3Embeddings
from langchain_search_r3.retrievers import SearchR3Retriever

__version__ = "0.1.0"

__all__ = ["SearchR3Embeddings", "SearchR3Retriever"]
