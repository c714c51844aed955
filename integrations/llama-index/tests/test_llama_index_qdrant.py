"""SearchR3Embedding and SearchR3Retriever with VectorStoreIndex over a real local Qdrant."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
from llama_index.embeddings.search_r3 import SearchR3Embedding
from llama_index.retrievers.search_r3 import SearchR3Retriever
from llama_index.vector_stores.qdrant import QdrantVectorStore
from search_r3 import SearchR3Error

# llama-index-vector-stores-qdrant asks for a payload index that Qdrant's local mode ignores.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

BUDGET = 4
COLLECTION = "li_test"


@pytest.fixture
def embed_model(fresh_embeddings) -> SearchR3Embedding:
    return SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "qdrant"


@pytest.fixture
def index(embed_model, documents, store_path) -> Iterator[VectorStoreIndex]:
    client = QdrantClient(path=str(store_path))
    vector_store = QdrantVectorStore(COLLECTION, client=client)
    storage = StorageContext.from_defaults(vector_store=vector_store)
    yield VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
    client.close()


def expected(embed_model: SearchR3Embedding, documents, query: str) -> tuple[list[str], np.ndarray, str]:
    """Ranking computed without LlamaIndex or Qdrant: numpy cosine on what the index embedded."""
    encoded = embed_model.client.encode_queries([query], reasoning=True, max_reasoning_tokens=BUDGET)
    texts = [d.get_content(metadata_mode=MetadataMode.EMBED) for d in documents]
    scores = embed_model.client.encode_documents(texts) @ encoded.embeddings[0]
    order = np.argsort(-scores)
    return [documents[i].id_ for i in order], scores[order], encoded.reasoning[0]


def ref_ids(nodes) -> list[str]:
    return [n.node.ref_doc_id for n in nodes]


def test_as_retriever_embeds_the_query_once(index, embed_model, documents, count_calls) -> None:
    query = "a language for writing programs"
    ids, scores, _ = expected(embed_model, documents, query)
    queries = count_calls(embed_model.client, "encode_queries")
    nodes = index.as_retriever(similarity_top_k=3).retrieve(query)
    assert len(queries) == 1
    assert ref_ids(nodes) == ids[:3]
    np.testing.assert_allclose([n.score for n in nodes], scores[:3], atol=1e-4)


def test_search_r3_retriever_adds_reasoning_once(index, embed_model, documents, count_calls) -> None:
    query = "which city has the Louvre?"
    ids, scores, reasoning = expected(embed_model, documents, query)
    assert reasoning.startswith(" Paris")
    queries = count_calls(embed_model.client, "encode_queries")
    nodes = SearchR3Retriever(index, similarity_top_k=3).retrieve(query)
    assert len(queries) == 1
    assert ref_ids(nodes) == ids[:3]
    np.testing.assert_allclose([n.score for n in nodes], scores[:3], atol=1e-4)
    for item in nodes:
        assert item.node.metadata["reasoning"] == reasoning
        assert item.node.metadata["forced"] is True  # a random model never emits the token itself
        assert item.node.metadata["topic"] in {"geo", "code", "food"}
        assert "reasoning" not in item.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "topic" in item.node.get_content(metadata_mode=MetadataMode.LLM)


def test_filters_and_precomputed_embeddings(index, embed_model, count_calls) -> None:
    only_food = MetadataFilters(filters=[MetadataFilter(key="topic", value="food")])
    nodes = SearchR3Retriever(index, similarity_top_k=5, filters=only_food).retrieve("something to eat")
    assert {n.node.metadata["topic"] for n in nodes} == {"food"} and len(nodes) == 2

    vector = embed_model.get_query_embedding("capital")
    queries = count_calls(embed_model.client, "encode_queries")
    nodes = SearchR3Retriever(index, similarity_top_k=2).retrieve(QueryBundle("capital", embedding=vector))
    assert not queries  # the bundle's embedding is used as is
    assert len(nodes) == 2 and "reasoning" not in nodes[0].node.metadata


def test_reopen_from_the_existing_store(index, embed_model, store_path, count_calls) -> None:
    query = "memory safe systems language"
    before = SearchR3Retriever(index, similarity_top_k=2).retrieve(query)
    index.vector_store.client.close()  # local mode: one client per folder

    client = QdrantClient(path=str(store_path))
    try:
        documents = count_calls(embed_model.client, "encode_documents")
        vector_store = QdrantVectorStore(COLLECTION, client=client)
        retriever = SearchR3Retriever.from_vector_store(vector_store, embed_model, similarity_top_k=2)
        after = retriever.retrieve(query)
        plain = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model).as_retriever(
            similarity_top_k=2
        )
        assert not documents  # nothing re-embedded on reopening
        assert ref_ids(after) == ref_ids(before) == ref_ids(plain.retrieve(query))
        assert after[0].node.metadata["reasoning"] == before[0].node.metadata["reasoning"]
    finally:
        client.close()


def test_as_query_engine_with_an_offline_llm(index, embed_model, count_calls) -> None:
    queries = count_calls(embed_model.client, "encode_queries")
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2)
    response = engine.query("Where is the Louvre?")
    assert len(queries) == 1
    assert len(response.source_nodes) == 2
    for item in response.source_nodes:  # MockLLM echoes its prompt: the context reached the LLM
        assert item.node.get_content() in str(response)


def test_query_engine_over_search_r3_retriever(index, embed_model, count_calls) -> None:
    queries = count_calls(embed_model.client, "encode_queries")
    engine = RetrieverQueryEngine.from_args(SearchR3Retriever(index, similarity_top_k=2), llm=MockLLM())
    response = engine.query("Where is the Louvre?")
    assert len(queries) == 1
    reasoning = response.source_nodes[0].node.metadata["reasoning"]
    assert reasoning.startswith(" Paris")
    assert reasoning.strip() not in str(response)  # reasoning is metadata, kept out of the LLM prompt
    assert all(item.node.get_content() in str(response) for item in response.source_nodes)


async def test_async_retrieval_and_query(embed_model, documents, count_calls) -> None:
    from llama_index.core.node_parser import SentenceSplitter

    vector_store = QdrantVectorStore("li_async", aclient=AsyncQdrantClient(":memory:"))
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    await index.ainsert_nodes(SentenceSplitter().get_nodes_from_documents(documents))

    queries = count_calls(embed_model.client, "encode_queries")
    nodes = await SearchR3Retriever(index, similarity_top_k=3).aretrieve("green tea leaves")
    assert len(queries) == 1 and len(nodes) == 3
    assert nodes[0].node.metadata["reasoning"].startswith(" Paris")

    engine = RetrieverQueryEngine.from_args(SearchR3Retriever(index, similarity_top_k=1), llm=MockLLM())
    response = await engine.aquery("bread")
    assert len(queries) == 2 and len(response.source_nodes) == 1


def test_rejects_an_index_without_search_r3_embeddings(index, embed_model) -> None:
    from llama_index.core.embeddings import MockEmbedding

    other = VectorStoreIndex.from_vector_store(index.vector_store, embed_model=MockEmbedding(embed_dim=64))
    with pytest.raises(SearchR3Error, match="SearchR3Embedding"):
        SearchR3Retriever(other)
    assert SearchR3Retriever(other, embed_model=embed_model).retrieve("tea")  # explicit model is fine
    with pytest.raises(SearchR3Error, match="similarity_top_k"):
        SearchR3Retriever(index, similarity_top_k=0)


@pytest.mark.server
@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server: set QDRANT_URL")
def test_index_on_a_qdrant_server(embed_model, documents) -> None:
    client = QdrantClient(url=os.environ["QDRANT_URL"], api_key=os.environ.get("QDRANT_API_KEY"))
    name = f"li_server_{uuid.uuid4().hex[:8]}"
    try:
        storage = StorageContext.from_defaults(vector_store=QdrantVectorStore(name, client=client))
        index = VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
        nodes = SearchR3Retriever(index, similarity_top_k=2).retrieve("capital of Germany")
        assert len(nodes) == 2 and nodes[0].node.metadata["reasoning"].startswith(" Paris")
    finally:
        if client.collection_exists(name):
            client.delete_collection(name)
        client.close()
