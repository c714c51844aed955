"""search-r3: reasoning embeddings from instruction-tuned LLMs (Search-R3, arXiv 2510.07048)."""

from search_r3.collections import Collection, load_collection, split_queries
from search_r3.decoding import SamplingOptions
from search_r3.errors import InvalidInputError, MissingEmbedTokenError, ModelLoadError, SearchR3Error
from search_r3.init_model import init_model
from search_r3.model import QueryEncodings, ReasoningEmbeddings
from search_r3.settings import EMBED_TOKEN, SearchR3Settings
from search_r3.store import Hit, QdrantStore, SearchResult

__version__ = "0.1.0"

__all__ = [
    "EMBED_TOKEN",
    "Collection",
    "Hit",
    "InvalidInputError",
    "MissingEmbedTokenError",
    "ModelLoadError",
    "QdrantStore",
    "QueryEncodings",
    "ReasoningEmbeddings",
    "SamplingOptions",
    "SearchR3Error",
    "SearchR3Settings",
    "SearchResult",
    "init_model",
    "load_collection",
    "split_queries",
]
