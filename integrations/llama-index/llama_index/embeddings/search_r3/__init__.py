"""LlamaIndex embedding model for search-r3 reasoning embeddings."""

from llama_index.embeddings.search_r3.base import SearchR3Embedding, capture_query_encodings

__all__ = ["SearchR3Embedding", "capture_query_encodings"]
