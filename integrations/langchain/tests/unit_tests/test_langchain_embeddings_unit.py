"""LangChain's standard unit suite for SearchR3Embeddings, plus its own contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from langchain_search_r3 import SearchR3Embeddings
from langchain_search_r3.embeddings import MODEL_ENV_VAR
from search_r3 import SearchR3Error

BUDGET = 4


class TestSearchR3EmbeddingsStandard(EmbeddingsUnitTests):
    """Constructed from a model path (the tiny Llama folder), as users do."""

    model_dir: str

    @pytest.fixture(autouse=True)
    def _model_dir(self, request: pytest.FixtureRequest, tiny_llama_dir: Path) -> None:
        request.cls.model_dir = str(tiny_llama_dir)

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return SearchR3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self.model_dir, "max_reasoning_tokens": BUDGET, "device": "cpu"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        # No `model` argument: it comes from SEARCH_R3_MODEL.
        return (
            {MODEL_ENV_VAR: self.model_dir},
            {"max_reasoning_tokens": BUDGET, "device": "cpu"},
            {"model": self.model_dir, "max_reasoning_tokens": BUDGET},
        )


def test_missing_model_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    with pytest.raises(SearchR3Error, match=MODEL_ENV_VAR):
        SearchR3Embeddings()


def test_unknown_argument_is_rejected(tiny_embeddings) -> None:
    with pytest.raises(ValidationError, match="max_reasoning_token"):
        SearchR3Embeddings(model=tiny_embeddings, max_reasoning_token=4)


def test_bad_path_is_a_model_load_error(tmp_path: Path) -> None:
    from search_r3 import ModelLoadError

    with pytest.raises(ModelLoadError, match="search-r3 init"):
        SearchR3Embeddings(model=str(tmp_path / "missing"), device="cpu")


def test_instance_is_shared_not_modified(tiny_embeddings) -> None:
    before = (tiny_embeddings.reasoning, tiny_embeddings.max_reasoning_tokens)
    emb = SearchR3Embeddings(model=tiny_embeddings, reasoning=False, max_reasoning_tokens=2)
    assert emb.client is tiny_embeddings
    assert (tiny_embeddings.reasoning, tiny_embeddings.max_reasoning_tokens) == before


def test_embedding_dimension_needs_no_forward(fresh_embeddings, count_calls) -> None:
    documents = count_calls(fresh_embeddings, "encode_documents")
    queries = count_calls(fresh_embeddings, "encode_queries")
    emb = SearchR3Embeddings(model=fresh_embeddings)
    assert emb.embedding_dimension == 64
    assert not documents and not queries
    assert len(emb.embed_documents(["x y z"])[0]) == emb.embedding_dimension


def test_embed_query_reasons_and_embed_documents_does_not(fresh_embeddings, count_calls) -> None:
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET)
    query = "which city hosts the Louvre?"
    reasoned = fresh_embeddings.encode_queries([query], reasoning=True, max_reasoning_tokens=BUDGET)
    direct = fresh_embeddings.encode_queries([query], reasoning=False)
    assert reasoned.generated_tokens[0] > 0

    queries = count_calls(fresh_embeddings, "encode_queries")
    vector = emb.embed_query(query)
    assert len(queries) == 1
    np.testing.assert_allclose(vector, reasoned.embeddings[0], atol=1e-5)
    assert not np.allclose(vector, direct.embeddings[0], atol=1e-4)

    docs = emb.embed_documents(["Paris is in France.", query])
    assert len(queries) == 1  # documents never reason
    np.testing.assert_allclose(
        docs, fresh_embeddings.encode_documents(["Paris is in France.", query]), atol=1e-5
    )
    assert all(isinstance(x, float) for x in docs[0])


def test_reasoning_switch_off_gives_the_direct_query_embedding(tiny_embeddings) -> None:
    emb = SearchR3Embeddings(model=tiny_embeddings, reasoning=False)
    query = "what is sourdough?"
    direct = tiny_embeddings.encode_queries([query], reasoning=False).embeddings[0]
    np.testing.assert_allclose(emb.embed_query(query), direct, atol=1e-5)
    encoded = emb.encode_query(query)
    assert encoded.reasoning == [""] and encoded.generated_tokens == [0]


def test_budget_is_applied(fresh_embeddings) -> None:
    for budget in (1, 3):
        encoded = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=budget).encode_query("tea?")
        assert encoded.generated_tokens[0] <= budget


async def test_async_variants_match_sync(tiny_embeddings) -> None:
    emb = SearchR3Embeddings(model=tiny_embeddings, max_reasoning_tokens=BUDGET)
    query, docs = "capital of Germany", ["Berlin is the capital of Germany.", "Tea."]
    np.testing.assert_allclose(await emb.aembed_query(query), emb.embed_query(query), atol=1e-5)
    np.testing.assert_allclose(await emb.aembed_documents(docs), emb.embed_documents(docs), atol=1e-5)


def test_empty_document_is_a_clear_error(tiny_embeddings) -> None:
    from search_r3 import InvalidInputError

    emb = SearchR3Embeddings(model=tiny_embeddings)
    with pytest.raises(InvalidInputError, match="index 1"):
        emb.embed_documents(["fine", "  "])
