"""The query cache in the LlamaIndex adapter: every query path looks it up before reasoning."""

from __future__ import annotations

import numpy as np
import pytest

from llama_index.core import VectorStoreIndex
from llama_index.embeddings.search_r3 import SearchR3Embedding
from llama_index.retrievers.search_r3 import SearchR3Retriever
from search_r3 import InvalidInputError
from search_r3.query_cache import QueryCache

BUDGET = 4
QUERIES = ["capital of Germany", "green tea leaves", "a language for programs"]


def test_a_repeated_query_reasons_once(fresh_embeddings, count_calls) -> None:
    plain = SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET)
    uncached = plain.encode_query(QUERIES[0])
    uncached_batch = plain.get_query_embedding_batch(QUERIES)
    cache = QueryCache()
    embed_model = SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET, query_cache=cache)
    assert embed_model.query_cache is cache and plain.query_cache is None
    calls = count_calls(fresh_embeddings, "encode_queries")
    first = embed_model.get_query_embedding(QUERIES[0])
    again = embed_model.get_query_embedding(QUERIES[0])
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    assert first == again == uncached.embeddings[0].tolist()  # the very vector the model gives
    assert embed_model.encode_query(QUERIES[0]).reasoning == uncached.reasoning
    batch = embed_model.get_query_embedding_batch(QUERIES)  # only the two new queries reason
    assert len(calls) == 2 and calls[1][0][0] == QUERIES[1:]
    np.testing.assert_allclose(batch, uncached_batch, atol=1e-5)
    assert "query_cache" not in embed_model.to_dict()  # a cache object is not configuration


async def test_async_paths_and_retrievers_share_it(fresh_embeddings, documents, count_calls) -> None:
    cache = QueryCache()
    embed_model = SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET, query_cache=cache)
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    calls = count_calls(fresh_embeddings, "encode_queries")
    await embed_model.aget_query_embedding(QUERIES[1])
    nodes = await SearchR3Retriever(index, similarity_top_k=2).aretrieve(QUERIES[1])  # a hit
    assert len(calls) == 1 and nodes[0].node.metadata["reasoning"] is not None
    index.as_retriever(similarity_top_k=2).retrieve(QUERIES[1])
    await embed_model.aget_query_embedding_batch(QUERIES[1:])
    assert len(calls) == 2 and calls[1][0][0] == QUERIES[2:]
    # a second embedding object (another budget) shares the cache object but not the entries
    other = SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET - 2, query_cache=cache)
    other.get_query_embedding(QUERIES[1])
    assert len(calls) == 3


def test_query_cache_must_be_a_query_cache(tiny_embeddings) -> None:
    with pytest.raises(InvalidInputError, match=r"must be a search_r3\.query_cache\.QueryCache, not"):
        SearchR3Embedding(tiny_embeddings, query_cache="queries.sqlite")
