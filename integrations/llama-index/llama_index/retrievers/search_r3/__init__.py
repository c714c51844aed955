"""LlamaIndex retriever that returns search-r3's query reasoning with every node."""

from llama_index.retrievers.search_r3.base import SearchR3Retriever

__all__ = ["SearchR3Retriever"]
