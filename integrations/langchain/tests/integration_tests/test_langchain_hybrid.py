"""Hybrid retrieval: stock langchain_qdrant.QdrantVectorStore with search-r3 on both sides, and
SearchR3Retriever(mode=...), on a real local Qdrant and the tiny talkative model."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings
from qdrant_client import models

from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever, SearchR3SparseEmbeddings
from search_r3 import InvalidInputError, ReasoningEmbeddings


@pytest.fixture
def dense(talkative_llama_dir) -> SearchR3Embeddings:
    # one reasoning token: " Paris" (with more, the random model glues letters onto it)
    model = ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=1)
    return SearchR3Embeddings(model=model)


def hybrid_store(dense, corpus, sparse, mode=RetrievalMode.HYBRID) -> QdrantVectorStore:
    return QdrantVectorStore.from_texts(
        corpus.texts,
        dense,
        metadatas=[{"name": i} for i in corpus.ids],
        sparse_embedding=sparse,
        retrieval_mode=mode,
        sparse_vector_params=sparse.sparse_vector_params(),
        location=":memory:",
        collection_name="lc_hybrid",
    )


def names(docs) -> list[str]:
    return [d.metadata["name"] for d in docs]


def test_is_a_langchain_qdrant_sparse_embeddings(dense) -> None:
    sparse = SearchR3SparseEmbeddings(dense)
    assert isinstance(sparse, SparseEmbeddings)
    vectors = sparse.embed_documents(["Wings lift.", "the of"])
    assert len(vectors[0].indices) == 2 and vectors[1].indices == []
    wing = SearchR3SparseEmbeddings().embed_query("wings")  # not linked: no expansion
    assert wing.values == [1.0] and wing.indices[0] in vectors[0].indices


def test_stock_hybrid_store_reasons_once_and_fuses_both_sides(dense, corpus, count_calls) -> None:
    sparse = SearchR3SparseEmbeddings(dense)
    store = hybrid_store(dense, corpus, sparse)
    config = store.client.get_collection("lc_hybrid").config.params
    assert config.sparse_vectors[store.sparse_vector_name].modifier == models.Modifier.IDF
    calls = count_calls(dense.client, "encode_queries")
    query = "sourdough"
    found = store.similarity_search_with_score(query, k=3)
    assert len(calls) == 1  # the sparse side took the dense side's reasoning
    assert len(dense.recent_reasoning) == 0

    # the same RRF (Qdrant's default k=2) recomputed from the two single-mode rankings
    vector = np.asarray(dense.client.encode_queries([query], reasoning=True).embeddings[0])
    doc_vectors = np.asarray(dense.embed_documents(corpus.texts))
    dense_rank = [corpus.ids[i] for i in np.argsort(-(doc_vectors @ vector))][:3]
    sparse_query = sparse.encoder.encode_query(
        query, " Paris", reasoning_weight=sparse.reasoning_weight
    ).to_qdrant()
    sparse_points = store.client.query_points(
        "lc_hybrid", query=sparse_query, using=store.sparse_vector_name, limit=3, with_payload=True
    ).points
    sparse_rank = [p.payload["metadata"]["name"] for p in sparse_points]
    assert sparse_rank == ["bread", "paris"]  # "paris" only through the reasoning (" Paris")
    fused: dict[str, float] = {}
    for ranking in (dense_rank, sparse_rank):
        for rank, name in enumerate(ranking, 1):
            fused[name] = fused.get(name, 0.0) + 1.0 / (rank + 1)
    assert {d.metadata["name"]: s for d, s in found} == pytest.approx(
        dict(sorted(fused.items(), key=lambda kv: -kv[1])[:3])
    )


def test_sparse_mode_alone_still_reasons_once(dense, corpus, count_calls) -> None:
    store = hybrid_store(dense, corpus, SearchR3SparseEmbeddings(dense), mode=RetrievalMode.SPARSE)
    calls = count_calls(dense.client, "encode_queries")
    assert names(store.similarity_search("sourdough", k=3)) == ["bread", "paris"]
    assert len(calls) == 1
    plain = hybrid_store(dense, corpus, SearchR3SparseEmbeddings(), mode=RetrievalMode.SPARSE)
    assert names(plain.similarity_search("sourdough", k=3)) == ["bread"]  # no expansion, no model
    assert len(calls) == 1


async def test_async_hybrid_search_reasons_once(dense, corpus, count_calls) -> None:
    store = hybrid_store(dense, corpus, SearchR3SparseEmbeddings(dense))
    calls = count_calls(dense.client, "encode_queries")
    found = await store.asimilarity_search("sourdough", k=2)
    assert len(calls) == 1 and len(found) == 2


def test_search_r3_retriever_modes(dense, corpus, count_calls) -> None:
    retriever = SearchR3Retriever.from_texts(
        corpus.texts, dense, metadatas=corpus.metadatas, ids=corpus.ids, k=3, mode="sparse"
    )
    calls = count_calls(dense.client, "encode_queries")
    docs = retriever.invoke("sourdough")
    assert [d.id for d in docs] == ["bread", "paris"] and len(calls) == 1
    assert docs[0].metadata["reasoning"].strip() == "Paris" and docs[0].metadata["forced"] is True
    hybrid = retriever.invoke("sourdough", mode="hybrid", fusion="dbsf")
    assert len(hybrid) == 3 and len(calls) == 2 and hybrid[0].id == "bread"
    dense_docs = retriever.invoke("sourdough", mode="dense")
    assert len(dense_docs) == 3 and len(calls) == 3
    direct = retriever.store.search("sourdough", k=3, mode="dense")
    assert [d.id for d in dense_docs] == [h.id for h in direct.hits]
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        retriever.invoke("sourdough", mode="bm25")
