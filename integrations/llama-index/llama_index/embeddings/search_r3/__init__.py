"""LlamaIndex embedding model for search-r3 reasoning embeddings, and its BM25 sparse encoder."""

from llama_index.embeddings.search_r3.base import SearchR3Embedding, capture_query_encodings
from llama_index.embeddings.search_r3.sparse import SearchR3SparseEncoder

__all__ = ["SearchR3Embedding", "SearchR3SparseEncoder", "capture_query_encodings"]
