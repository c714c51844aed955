"""HuggingFaceEmbedding idioms, to_dict round trips, batched and async paths, async over local Qdrant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.embeddings.search_r3 import SearchR3Embedding, capture_query_encodings
from llama_index.retrievers.search_r3 import SearchR3Retriever
from llama_index.vector_stores.qdrant import QdrantVectorStore
from search_r3 import InvalidInputError
from search_r3.settings import DEFAULT_BATCH_SIZE

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

BUDGET = 4
QUERIES = ["capital of Germany", "green tea leaves", "a language for programs"]


def test_hugging_face_embedding_idiom_and_to_dict_keeps_device_and_dtype(tiny_llama_dir: Path) -> None:
    # HuggingFaceEmbedding(model_name=..., device=..., **model_kwargs) spelling.
    embed_model = SearchR3Embedding(
        model_name=str(tiny_llama_dir),
        device="cpu",
        torch_dtype="bfloat16",
        max_length=64,
        max_reasoning_tokens=BUDGET,
        show_progress_bar=False,
    )
    assert embed_model.embed_batch_size == DEFAULT_BATCH_SIZE
    assert embed_model.client.max_length == 64
    assert str(next(embed_model.client.model.parameters()).dtype) == "torch.bfloat16"
    data = embed_model.to_dict()
    assert (data["device"], data["dtype"], data["model_kwargs"]) == ("cpu", "bfloat16", {"max_length": 64})
    again = SearchR3Embedding.from_dict(data)
    assert str(next(again.client.model.parameters()).dtype) == "torch.bfloat16"
    assert again.client.max_length == 64 and again.client.device.type == "cpu"
    np.testing.assert_allclose(
        again.get_query_embedding(QUERIES[0]), embed_model.get_query_embedding(QUERIES[0]), atol=1e-3
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "cpu", "model_kwargs": {"device": "meta"}}, "device is given twice"),
        ({"trust_remote_code": True}, "never runs code"),
        ({"cache_folder": "x"}, "does not take cache_folder; accepted keys:"),
    ],
)
def test_bad_idioms_are_one_line_errors(tiny_llama_dir: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        SearchR3Embedding(str(tiny_llama_dir), **kwargs)


def test_query_batch_is_one_call(fresh_embeddings, count_calls) -> None:
    debug = LlamaDebugHandler()
    embed_model = SearchR3Embedding(
        fresh_embeddings, max_reasoning_tokens=BUDGET, callback_manager=CallbackManager([debug])
    )
    singles = [embed_model.get_query_embedding(q) for q in QUERIES]
    calls = count_calls(fresh_embeddings, "encode_queries")
    with capture_query_encodings() as seen:
        batched = embed_model.get_query_embedding_batch(QUERIES)
    assert len(calls) == 1 and calls[0][0][0] == QUERIES
    assert len(seen) == 1 and len(seen[0].reasoning) == 3
    np.testing.assert_allclose(batched, singles, atol=1e-4)
    assert len(debug.get_event_pairs(CBEventType.EMBEDDING)) == 4  # 3 singles + the batch
    agg = embed_model.get_agg_embedding_from_queries(QUERIES)
    assert len(calls) == 2
    np.testing.assert_allclose(agg, np.mean(singles, axis=0), atol=1e-4)


async def test_async_query_and_text_batches_are_one_call(fresh_embeddings, count_calls) -> None:
    embed_model = SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET, embed_batch_size=2)
    queries = count_calls(fresh_embeddings, "encode_queries")
    documents = count_calls(fresh_embeddings, "encode_documents")
    with capture_query_encodings() as seen:
        vectors = await embed_model.aget_query_embedding_batch(QUERIES)
    assert len(queries) == 1 and len(vectors) == 3 and len(seen) == 1
    await embed_model.aget_agg_embedding_from_queries(QUERIES)
    assert len(queries) == 2
    texts = [f"text {i}" for i in range(5)]
    got = await embed_model.aget_text_embedding_batch(texts)
    assert len(documents) == 1 and documents[0][0][0] == texts  # not 3 concurrent chunks of 2
    np.testing.assert_allclose(got, fresh_embeddings.encode_documents(texts), atol=1e-5)


async def test_aretrieve_over_local_mode_qdrant(fresh_embeddings, documents, tmp_path, count_calls) -> None:
    # The guide's async promise over a local-mode store: only a sync client, no aclient.
    embed_model = SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET)
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    storage = StorageContext.from_defaults(vector_store=QdrantVectorStore("li_local", client=client))
    index = VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
    retriever = SearchR3Retriever(index, similarity_top_k=3)
    expected = retriever.retrieve("green tea leaves")
    calls = count_calls(fresh_embeddings, "encode_queries")
    nodes = await retriever.aretrieve("green tea leaves")
    assert len(calls) == 1
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in expected]
    assert nodes[0].node.metadata["reasoning"] == expected[0].node.metadata["reasoning"]
    with pytest.raises(ValueError, match="Async client is not initialized"):
        await index.as_retriever().aretrieve("tea")  # what the plain retriever does there
    client.close()
