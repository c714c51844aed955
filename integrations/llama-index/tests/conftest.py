"""Fixtures for the llama-index-search-r3 tests (the tiny models come from the repository's conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_r3 import ReasoningEmbeddings

# Test modules do not import from this file (several conftest.py files share the module name
# "conftest" in a whole-repository run): what they share comes in as fixtures.
BUDGET = 4  # a reasoning budget small enough to keep every test fast on a CPU

CORPUS = [
    ("paris", "Paris is the capital of France and home of the Louvre museum.", "geo"),
    ("berlin", "Berlin is the capital of Germany.", "geo"),
    ("python", "Python is a programming language with dynamic typing.", "code"),
    ("rust", "Rust is a systems programming language focused on memory safety.", "code"),
    ("tea", "Green tea is made from unoxidised leaves of Camellia sinensis.", "food"),
    ("bread", "Sourdough bread rises with wild yeast and lactic acid bacteria.", "food"),
]


@pytest.fixture
def documents() -> list:
    """Six short LlamaIndex documents in three topics (metadata ``topic``)."""
    from llama_index.core import Document

    return [Document(text=text, id_=doc_id, metadata={"topic": topic}) for doc_id, text, topic in CORPUS]


@pytest.fixture
def fresh_embeddings(talkative_llama_dir: Path) -> ReasoningEmbeddings:
    """A ReasoningEmbeddings of its own per test, so a test may wrap its methods to count calls."""
    return ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=BUDGET)
