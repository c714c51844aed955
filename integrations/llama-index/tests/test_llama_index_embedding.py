"""SearchR3Embedding against LlamaIndex's BaseEmbedding contract."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.embeddings.search_r3 import SearchR3Embedding, capture_query_encodings
from llama_index.embeddings.search_r3.base import MODEL_ENV_VAR
from search_r3 import InvalidInputError, SearchR3Error

BUDGET = 4
QUERY = "which city hosts the Louvre?"


@pytest.fixture
def embed_model(fresh_embeddings) -> SearchR3Embedding:
    return SearchR3Embedding(fresh_embeddings, max_reasoning_tokens=BUDGET)


def test_is_a_base_embedding_with_a_stable_name(embed_model) -> None:
    assert isinstance(embed_model, BaseEmbedding)
    assert SearchR3Embedding.class_name() == "SearchR3Embedding"
    assert embed_model.to_dict()["class_name"] == "SearchR3Embedding"
    assert embed_model.embedding_dimension == 64


def test_query_embedding_reasons_once(embed_model, fresh_embeddings, count_calls) -> None:
    reasoned = fresh_embeddings.encode_queries([QUERY], reasoning=True, max_reasoning_tokens=BUDGET)
    direct = fresh_embeddings.encode_queries([QUERY], reasoning=False)
    queries = count_calls(fresh_embeddings, "encode_queries")
    vector = embed_model.get_query_embedding(QUERY)
    assert len(queries) == 1 and queries[0][1]["max_reasoning_tokens"] == BUDGET
    np.testing.assert_allclose(vector, reasoned.embeddings[0], atol=1e-5)
    assert not np.allclose(vector, direct.embeddings[0], atol=1e-4)
    assert embed_model.encode_query(QUERY).reasoning[0].startswith(" Paris")


def test_reasoning_switch_off(fresh_embeddings) -> None:
    embed_model = SearchR3Embedding(fresh_embeddings, reasoning=False)
    direct = fresh_embeddings.encode_queries([QUERY], reasoning=False).embeddings[0]
    np.testing.assert_allclose(embed_model.get_query_embedding(QUERY), direct, atol=1e-5)


def test_text_embeddings_do_not_reason_and_are_batched(fresh_embeddings, count_calls) -> None:
    embed_model = SearchR3Embedding(fresh_embeddings, embed_batch_size=2)
    texts = [
        f"document number {i} about {w}" for i, w in enumerate(["tea", "bread", "rust", "paris", "rome"])
    ]
    expected = fresh_embeddings.encode_documents(texts)
    queries = count_calls(fresh_embeddings, "encode_queries")
    documents = count_calls(fresh_embeddings, "encode_documents")
    vectors = embed_model.get_text_embedding_batch(texts)
    assert [len(args[0]) for args, _ in documents] == [2, 2, 1]  # one forward batch per chunk
    assert not queries
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(embed_model.get_text_embedding(texts[3]), expected[3], atol=1e-5)


async def test_async_variants_match_sync(embed_model) -> None:
    texts = ["Berlin is the capital of Germany.", "Green tea."]
    np.testing.assert_allclose(
        await embed_model.aget_query_embedding(QUERY), embed_model.get_query_embedding(QUERY), atol=1e-5
    )
    np.testing.assert_allclose(
        await embed_model.aget_text_embedding_batch(texts),
        embed_model.get_text_embedding_batch(texts),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        await embed_model.aget_text_embedding(texts[0]), embed_model.get_text_embedding(texts[0]), atol=1e-5
    )


async def test_capture_sees_async_queries(embed_model) -> None:
    with capture_query_encodings() as seen:
        await embed_model.aget_query_embedding(QUERY)
    assert len(seen) == 1 and seen[0].reasoning[0].startswith(" Paris")


def test_capture_is_local_to_its_context(embed_model) -> None:
    with capture_query_encodings() as seen:
        worker = threading.Thread(target=embed_model.get_query_embedding, args=("from another thread",))
        worker.start()
        worker.join()
        assert seen == []  # another thread's query is not ours
        embed_model.get_query_embedding(QUERY)
    embed_model.get_query_embedding("after the block")
    assert len(seen) == 1


def test_from_path_and_round_trip_through_to_dict(talkative_llama_dir: Path) -> None:
    embed_model = SearchR3Embedding(str(talkative_llama_dir), max_reasoning_tokens=2, device="cpu")
    assert embed_model.model_name == str(talkative_llama_dir)
    again = SearchR3Embedding.from_dict(embed_model.to_dict())
    assert again.max_reasoning_tokens == 2 and again.model_name == embed_model.model_name
    np.testing.assert_allclose(
        again.get_query_embedding(QUERY), embed_model.get_query_embedding(QUERY), atol=1e-5
    )


def test_instance_is_shared_not_modified(tiny_embeddings) -> None:
    before = (tiny_embeddings.reasoning, tiny_embeddings.max_reasoning_tokens, tiny_embeddings.batch_size)
    embed_model = SearchR3Embedding(
        tiny_embeddings, reasoning=False, max_reasoning_tokens=1, embed_batch_size=3
    )
    assert embed_model.client is tiny_embeddings
    assert (
        tiny_embeddings.reasoning,
        tiny_embeddings.max_reasoning_tokens,
        tiny_embeddings.batch_size,
    ) == before


def test_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch, tiny_embeddings) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    with pytest.raises(SearchR3Error, match=MODEL_ENV_VAR):
        SearchR3Embedding()
    with pytest.raises(InvalidInputError, match="index 1"):
        SearchR3Embedding(tiny_embeddings).get_text_embedding_batch(["fine", ""])
