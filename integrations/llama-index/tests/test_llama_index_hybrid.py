"""Stock LlamaIndex QdrantVectorStore(enable_hybrid=True) with SearchR3SparseEncoder, and
SearchR3Retriever(mode=...), on a real local Qdrant and the tiny talkative model."""

from __future__ import annotations

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import QueryBundle
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from llama_index.embeddings.search_r3 import SearchR3Embedding, SearchR3SparseEncoder
from llama_index.retrievers.search_r3 import SearchR3Retriever
from llama_index.vector_stores.qdrant import QdrantVectorStore
from llama_index.vector_stores.qdrant.utils import relative_score_fusion
from search_r3 import ReasoningEmbeddings, SearchR3Error

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


@pytest.fixture
def embed_model(talkative_llama_dir) -> SearchR3Embedding:
    # one reasoning token: " Paris" (with more, the random model glues letters onto it)
    model = ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=1)
    return SearchR3Embedding(model)


@pytest.fixture
def index(embed_model, documents) -> VectorStoreIndex:
    client = QdrantClient(":memory:")
    sparse = SearchR3SparseEncoder(embed_model)
    vector_store = QdrantVectorStore("li_hybrid", client=client, **sparse.vector_store_kwargs())
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)


def ref_ids(nodes) -> list[str]:
    return [n.node.ref_doc_id for n in nodes]


def test_the_collection_is_hybrid_with_qdrant_idf(index) -> None:
    store = index.vector_store
    params = store.client.get_collection("li_hybrid").config.params
    assert params.sparse_vectors[store.sparse_vector_name].modifier == models.Modifier.IDF
    assert store.dense_vector_name in params.vectors
    points, _ = store.client.scroll("li_hybrid", limit=10, with_vectors=True)
    assert len(points) == 6 and all(len(p.vector[store.sparse_vector_name].indices) > 0 for p in points)


def test_stock_sparse_and_hybrid_retrieval_reason_once(index, embed_model, count_calls) -> None:
    calls = count_calls(embed_model.client, "encode_queries")
    sparse = index.as_retriever(similarity_top_k=3, vector_store_query_mode="sparse").retrieve("sourdough")
    assert len(calls) == 1
    assert ref_ids(sparse) == ["bread", "paris"]  # "paris" only through the reasoning (" Paris")
    hybrid = index.as_retriever(similarity_top_k=3, vector_store_query_mode="hybrid").retrieve("sourdough")
    assert len(calls) == 2 and len(embed_model.recent_reasoning) == 0

    # LlamaIndex fuses client-side (relative score fusion): recompute it from the two single-mode
    # results, with the same query vector and the same reasoning
    store = index.vector_store
    vector = embed_model.client.encode_queries(["sourdough"], reasoning=True).embeddings[0].tolist()
    dense = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=3))
    embed_model.recent_reasoning.put("sourdough", " Paris")
    sparse = store.query(
        VectorStoreQuery(query_str="sourdough", similarity_top_k=3, mode=VectorStoreQueryMode.SPARSE)
    )
    assert [n.ref_doc_id for n in sparse.nodes] == ["bread", "paris"]
    fused = relative_score_fusion(dense, sparse, alpha=0.5, top_k=3)
    assert [n.node.node_id for n in hybrid] == [n.node_id for n in fused.nodes]
    assert [n.score for n in hybrid] == pytest.approx(fused.similarities)


def test_plain_encoder_does_not_expand(embed_model, documents, count_calls) -> None:
    vector_store = QdrantVectorStore(
        "li_plain", client=QdrantClient(":memory:"), **SearchR3SparseEncoder().vector_store_kwargs()
    )
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=embed_model,
    )
    nodes = index.as_retriever(similarity_top_k=3, vector_store_query_mode="sparse").retrieve("sourdough")
    assert ref_ids(nodes) == ["bread"]


def test_search_r3_retriever_takes_the_mode(index, embed_model, count_calls) -> None:
    calls = count_calls(embed_model.client, "encode_queries")
    nodes = SearchR3Retriever(index, similarity_top_k=3, mode="sparse").retrieve("sourdough")
    assert ref_ids(nodes) == ["bread", "paris"] and len(calls) == 1
    assert nodes[0].node.metadata["reasoning"].strip() == "Paris"
    nodes = SearchR3Retriever(index, similarity_top_k=3, mode="hybrid").retrieve("sourdough")
    assert len(calls) == 2 and "bread" in ref_ids(nodes) and nodes[0].node.metadata["reasoning"]
    vector = embed_model.get_query_embedding("sourdough")
    calls.clear()
    nodes = SearchR3Retriever(index, similarity_top_k=3, mode="sparse").retrieve(
        QueryBundle("sourdough", embedding=vector)
    )
    # the reasoning of that get_query_embedding call is the one the sparse side uses: no new call
    assert not calls and ref_ids(nodes) == ["bread", "paris"]
    nodes = SearchR3Retriever(index, similarity_top_k=3, mode="sparse").retrieve(
        QueryBundle("sourdough", embedding=vector)
    )
    assert len(calls) == 1 and ref_ids(nodes) == ["bread", "paris"]  # reasoned once, for the sparse side
    with pytest.raises(SearchR3Error, match="mode must be one of"):
        SearchR3Retriever(index, mode="bm25")


async def test_async_hybrid_reasons_once(embed_model, documents, count_calls) -> None:
    from llama_index.core.node_parser import SentenceSplitter

    sparse = SearchR3SparseEncoder(embed_model)
    vector_store = QdrantVectorStore(
        "li_async_hybrid", aclient=AsyncQdrantClient(":memory:"), **sparse.vector_store_kwargs()
    )
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    await index.ainsert_nodes(SentenceSplitter().get_nodes_from_documents(documents))
    calls = count_calls(embed_model.client, "encode_queries")
    nodes = await SearchR3Retriever(index, similarity_top_k=3, mode="sparse").aretrieve("sourdough")
    assert len(calls) == 1 and ref_ids(nodes) == ["bread", "paris"]
