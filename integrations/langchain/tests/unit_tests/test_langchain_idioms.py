"""The HuggingFaceEmbeddings idioms, and batched/async paths that keep the core's batching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from langchain_search_r3 import SearchR3Embeddings
from search_r3 import InvalidInputError
from search_r3.settings import DEFAULT_BATCH_SIZE

BUDGET = 4
QUERIES = ["capital of Germany", "green tea leaves", "a language for programs"]


def test_model_name_and_model_kwargs_device(tiny_llama_dir: Path) -> None:
    # HuggingFaceEmbeddings(model_name=..., model_kwargs={"device": "cpu"}): the idiom from the issue.
    emb = SearchR3Embeddings(
        model_name=str(tiny_llama_dir), model_kwargs={"device": "cpu"}, max_reasoning_tokens=BUDGET
    )
    assert emb.model == emb.model_name == str(tiny_llama_dir)
    assert emb.client.device.type == "cpu" and emb.device == "cpu"
    assert emb.client.batch_size == DEFAULT_BATCH_SIZE


def test_model_kwargs_dtype_and_loader_options(tiny_llama_dir: Path) -> None:
    emb = SearchR3Embeddings(
        model=str(tiny_llama_dir),
        device="cpu",  # the same value in both places is fine
        model_kwargs={"device": "cpu", "torch_dtype": "bfloat16", "max_length": 64},
    )
    assert str(next(emb.client.model.parameters()).dtype) == "torch.bfloat16"
    assert emb.dtype == "bfloat16" and emb.client.max_length == 64
    assert emb.client.batch_size == DEFAULT_BATCH_SIZE
    in_kwargs = SearchR3Embeddings(model=emb.client, model_kwargs={})  # a loaded model: used as is
    assert in_kwargs.client is emb.client


def test_batch_size_in_model_kwargs(tiny_llama_dir: Path) -> None:
    emb = SearchR3Embeddings(model=str(tiny_llama_dir), model_kwargs={"device": "cpu", "batch_size": 4})
    assert emb.client.batch_size == 4
    with pytest.raises(InvalidInputError, match="batch_size is given twice"):
        SearchR3Embeddings(model=str(tiny_llama_dir), batch_size=8, model_kwargs={"batch_size": 4})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "cpu", "model_kwargs": {"device": "meta"}}, "device is given twice"),
        ({"model_kwargs": {"trust_remote_code": True}}, "never runs code"),
        ({"model_kwargs": {"cache_dir": "x"}}, "model_kwargs does not take cache_dir; accepted keys:"),
        ({"encode_kwargs": {"convert_to_tensor": True}}, "encode_kwargs does not take convert_to_tensor"),
        ({"query_encode_kwargs": {"max_batch_tokens": 9}}, "query_encode_kwargs does not take"),
        ({"model_name": "elsewhere"}, "disagree"),
    ],
)
def test_bad_idioms_are_one_line_errors(tiny_llama_dir: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        SearchR3Embeddings(model=str(tiny_llama_dir), **kwargs)


def test_encode_kwargs_reach_the_core(fresh_embeddings, count_calls) -> None:
    documents = count_calls(fresh_embeddings, "encode_documents")
    queries = count_calls(fresh_embeddings, "encode_queries")
    emb = SearchR3Embeddings(
        model=fresh_embeddings,
        max_reasoning_tokens=BUDGET,
        encode_kwargs={"batch_size": 3, "max_batch_tokens": 500, "normalize_embeddings": True},
        query_encode_kwargs={"batch_size": 2, "seed": 7},
        show_progress=True,
    )
    vectors = np.array(emb.embed_documents(["one text", "another text"]))
    assert documents[0][1] == {"batch_size": 3, "max_batch_tokens": 500, "show_progress_bar": True}
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    emb.embed_query("tea?")
    assert queries[0][1]["batch_size"] == 2 and queries[0][1]["seed"] == 7
    assert queries[0][1]["max_reasoning_tokens"] == BUDGET
    assert "max_batch_tokens" not in queries[0][1]  # a document-only key never reaches queries


def test_normalize_embeddings_normalises(tiny_embeddings) -> None:
    emb = SearchR3Embeddings(model=tiny_embeddings, encode_kwargs={"normalize_embeddings": True})
    raw = tiny_embeddings.encode_documents(["Tea leaves."])
    expected = raw[0] / np.linalg.norm(raw[0])
    np.testing.assert_allclose(emb.embed_documents(["Tea leaves."])[0], expected, atol=1e-5)


def test_embed_queries_is_one_batched_call(fresh_embeddings, count_calls) -> None:
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)
    singles = [emb.embed_query(q) for q in QUERIES]
    calls = count_calls(fresh_embeddings, "encode_queries")
    batched = emb.embed_queries(QUERIES)
    assert len(calls) == 1 and calls[0][0][0] == QUERIES
    np.testing.assert_allclose(batched, singles, atol=1e-4)


async def test_async_paths_make_one_call_each(fresh_embeddings, count_calls) -> None:
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)
    queries = count_calls(fresh_embeddings, "encode_queries")
    documents = count_calls(fresh_embeddings, "encode_documents")
    await emb.aembed_documents(["a", "b", "c"])
    assert len(documents) == 1 and documents[0][0][0] == ["a", "b", "c"]
    await emb.aembed_query(QUERIES[0])
    assert len(queries) == 1
    vectors = await emb.aembed_queries(QUERIES)
    assert len(queries) == 2 and len(vectors) == 3


async def test_async_runs_off_the_event_loop(fresh_embeddings) -> None:
    # The loop stays free while a query reasons: a ticker task advances during aembed_query.
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await emb.aembed_queries(QUERIES * 4)
    task.cancel()
    assert ticks > 1
