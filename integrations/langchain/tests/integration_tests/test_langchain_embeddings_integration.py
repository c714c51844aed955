"""LangChain's standard integration suite for SearchR3Embeddings, on the tiny Llama model."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from langchain_search_r3 import SearchR3Embeddings
from search_r3 import ReasoningEmbeddings


class TestSearchR3EmbeddingsIntegration(EmbeddingsIntegrationTests):
    """Built from a loaded ReasoningEmbeddings (the other constructor form)."""

    loaded: ReasoningEmbeddings

    @pytest.fixture(autouse=True)
    def _loaded(self, request: pytest.FixtureRequest, tiny_embeddings: ReasoningEmbeddings) -> None:
        request.cls.loaded = tiny_embeddings

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return SearchR3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self.loaded, "max_reasoning_tokens": 4}
