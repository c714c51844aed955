"""The query cache in the LangChain adapter, and LangChain's own CacheBackedEmbeddings around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever
from search_r3 import InvalidInputError
from search_r3.query_cache import QueryCache

BUDGET = 4
QUERIES = ["capital of Germany", "green tea leaves", "a language for programs"]


def test_a_repeated_query_reasons_once(fresh_embeddings, count_calls) -> None:
    plain = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)
    uncached = plain.encode_query(QUERIES[0])
    uncached_batch = plain.embed_queries(QUERIES)
    cache = QueryCache()
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET, query_cache=cache)
    calls = count_calls(fresh_embeddings, "encode_queries")
    first = emb.embed_query(QUERIES[0])
    again = emb.embed_query(QUERIES[0])
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    assert first == again == uncached.embeddings[0].tolist()  # the very vector the model gives
    assert emb.encode_query(QUERIES[0]).reasoning == uncached.reasoning

    # a batch encodes only what the cache lacks, in one call
    batch = emb.embed_queries(QUERIES)
    assert len(calls) == 2 and calls[1][0][0] == QUERIES[1:]
    np.testing.assert_allclose(batch, uncached_batch, atol=1e-5)  # batched: padding may differ
    # another budget is another key: it reasons again
    other = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET - 2, query_cache=cache)
    other.embed_query(QUERIES[0])
    assert len(calls) == 3


async def test_async_queries_use_the_cache(fresh_embeddings, count_calls) -> None:
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET, query_cache=QueryCache())
    calls = count_calls(fresh_embeddings, "encode_queries")
    first = await emb.aembed_query(QUERIES[1])
    assert await emb.aembed_query(QUERIES[1]) == first and len(calls) == 1


def test_the_retriever_shares_the_cache(fresh_embeddings, count_calls, corpus) -> None:
    cache = QueryCache()
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET, query_cache=cache)
    retriever = SearchR3Retriever.from_texts(corpus.texts, emb, ids=corpus.ids, k=2, mode="dense")
    assert retriever.query_cache is cache  # from_texts takes the embeddings' cache
    uncached = SearchR3Retriever(store=retriever.store, k=2, mode="dense", max_reasoning_tokens=BUDGET)
    expected = uncached.invoke(QUERIES[0])
    emb.embed_query(QUERIES[0])  # reasoned once, through the embeddings
    calls = count_calls(fresh_embeddings, "encode_queries")
    docs = retriever.invoke(QUERIES[0])  # a hit: no generation
    assert calls == []
    assert [d.id for d in docs] == [d.id for d in expected]
    assert [d.metadata["score"] for d in docs] == pytest.approx([d.metadata["score"] for d in expected])
    assert docs[0].metadata["reasoning"] == expected[0].metadata["reasoning"]
    retriever.batch(QUERIES)  # one call, for the two queries not yet cached
    assert len(calls) == 1 and calls[0][0][0] == QUERIES[1:]
    retriever.invoke(QUERIES[2])
    assert len(calls) == 1


def test_a_persistent_cache_survives_a_new_model_object(
    talkative_llama_dir: Path, tmp_path: Path, count_calls
) -> None:
    path = tmp_path / "queries.sqlite"
    with QueryCache(path=path) as cache:
        first = SearchR3Embeddings(model=str(talkative_llama_dir), device="cpu", max_reasoning_tokens=BUDGET)
        first.query_cache = cache
        vector = first.embed_query(QUERIES[0])
    with QueryCache(path=path) as cache:
        second = SearchR3Embeddings(
            model=str(talkative_llama_dir), device="cpu", max_reasoning_tokens=BUDGET, query_cache=cache
        )
        calls = count_calls(second.client, "encode_queries")
        assert second.embed_query(QUERIES[0]) == vector and calls == [] and cache.hits == 1


def test_query_cache_must_be_a_query_cache(tiny_embeddings) -> None:
    with pytest.raises(InvalidInputError, match=r"must be a search_r3\.query_cache\.QueryCache, not"):
        SearchR3Embeddings(model=tiny_embeddings, query_cache={})


def test_cache_backed_embeddings_idiom(fresh_embeddings, count_calls) -> None:
    # What docs/guides/langchain.md shows: documents through the byte store, queries too.
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_core.stores import InMemoryByteStore

    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)
    store = InMemoryByteStore()
    cached = CacheBackedEmbeddings.from_bytes_store(
        emb, store, namespace="search-r3-smollm2-135m", query_embedding_cache=True, key_encoder="sha256"
    )
    documents = count_calls(fresh_embeddings, "encode_documents")
    queries = count_calls(fresh_embeddings, "encode_queries")
    texts = ["Tea leaves are dried.", "Berlin is in Germany."]
    first = cached.embed_documents(texts)
    assert cached.embed_documents(texts) == first and len(documents) == 1
    assert len(list(store.yield_keys())) == 2
    q = cached.embed_query(QUERIES[0])
    assert cached.embed_query(QUERIES[0]) == pytest.approx(q) and len(queries) == 1
    np.testing.assert_allclose(q, emb.embed_query(QUERIES[0]), atol=1e-6)
