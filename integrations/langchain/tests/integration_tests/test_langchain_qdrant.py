"""SearchR3Embeddings inside langchain_qdrant.QdrantVectorStore, on a real local Qdrant."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

from langchain_search_r3 import SearchR3Embeddings

BUDGET = 4


@pytest.fixture
def embeddings(fresh_embeddings) -> SearchR3Embeddings:
    return SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)


@pytest.fixture
def metadatas(corpus) -> list[dict]:
    return [{"name": doc_id, **meta} for doc_id, meta in zip(corpus.ids, corpus.metadatas, strict=True)]


def ranking(embeddings: SearchR3Embeddings, corpus, query: str) -> list[str]:
    scores = np.asarray(embeddings.embed_documents(corpus.texts)) @ np.asarray(embeddings.embed_query(query))
    return [corpus.ids[i] for i in np.argsort(-scores)]


def test_from_texts_learns_the_size_without_generation(embeddings, corpus, metadatas, count_calls) -> None:
    """langchain-qdrant embeds a probe text as a *document*: one forward pass, never a generation."""
    client = embeddings.client
    queries = count_calls(client, "encode_queries")
    documents = count_calls(client, "encode_documents")
    store = QdrantVectorStore.from_texts(
        corpus.texts, embeddings, metadatas=metadatas, location=":memory:", collection_name="lc_qdrant"
    )
    assert not queries
    probe_calls = [args for args, _ in documents if list(args[0]) == ["dummy_text"]]
    assert len(probe_calls) == 1

    query = "which city has the Louvre?"
    found = store.similarity_search(query, k=3)
    assert len(queries) == 1  # the query is reasoned about once
    assert [d.metadata["name"] for d in found] == ranking(embeddings, corpus, query)[:3]


def test_cheap_path_no_forward_pass_at_all(embeddings, corpus, metadatas, count_calls) -> None:
    """Create the collection from embedding_dimension; skip langchain-qdrant's probe."""
    client = QdrantClient(":memory:")
    queries = count_calls(embeddings.client, "encode_queries")
    documents = count_calls(embeddings.client, "encode_documents")
    client.create_collection(
        "lc_cheap",
        vectors_config=models.VectorParams(
            size=embeddings.embedding_dimension, distance=models.Distance.COSINE
        ),
    )
    store = QdrantVectorStore(client, "lc_cheap", embedding=embeddings, validate_collection_config=False)
    assert not queries and not documents

    store.add_texts(corpus.texts, metadatas=metadatas)
    assert len(documents) == 1 and not queries
    query = "a systems language that is memory safe"
    hits = store.similarity_search_with_score(query, k=2)
    assert len(queries) == 1
    assert [d.metadata["name"] for d, _ in hits] == ranking(embeddings, corpus, query)[:2]
    assert hits[0][1] >= hits[1][1]

    # Reopening with validation: one document forward (the probe), still no generation.
    before = len(documents), len(queries)
    QdrantVectorStore(client, "lc_cheap", embedding=embeddings)
    assert (len(documents), len(queries)) == (before[0] + 1, before[1])


def test_a_wrong_dimension_is_caught_by_langchain_qdrant(embeddings) -> None:
    from langchain_qdrant.qdrant import QdrantVectorStoreError

    client = QdrantClient(":memory:")
    client.create_collection(
        "lc_wrong", vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE)
    )
    with pytest.raises(QdrantVectorStoreError, match="64-dimensional"):
        QdrantVectorStore(client, "lc_wrong", embedding=embeddings)


async def test_async_search_reasons_once(embeddings, corpus, metadatas, count_calls) -> None:
    store = QdrantVectorStore.from_texts(corpus.texts, embeddings, metadatas=metadatas, location=":memory:")
    queries = count_calls(embeddings.client, "encode_queries")
    found = await store.asimilarity_search("sourdough", k=2)
    assert len(queries) == 1 and len(found) == 2
