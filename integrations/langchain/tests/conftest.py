"""Fixtures for the langchain-search-r3 tests (the tiny models come from the repository's conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from search_r3 import ReasoningEmbeddings

# Test modules do not import from this file (several conftest.py files share the module name
# "conftest" in a whole-repository run): what they share comes in as fixtures.
BUDGET = 4  # a reasoning budget small enough to keep every test fast on a CPU

_CORPUS = [
    ("paris", "Paris is the capital of France and home of the Louvre museum.", {"source": "geo"}),
    ("berlin", "Berlin is the capital of Germany.", {"source": "geo"}),
    ("python", "Python is a programming language with dynamic typing.", {"source": "code"}),
    ("rust", "Rust is a systems programming language focused on memory safety.", {"source": "code"}),
    ("tea", "Green tea is made from unoxidised leaves of Camellia sinensis.", {"source": "food"}),
    ("bread", "Sourdough bread rises with wild yeast and lactic acid bacteria.", {"source": "food"}),
]


@dataclass(frozen=True)
class Corpus:
    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """Six short documents in three topics; metadata ``source`` names the topic."""
    return Corpus([c[0] for c in _CORPUS], [c[1] for c in _CORPUS], [dict(c[2]) for c in _CORPUS])


@pytest.fixture(scope="session")
def budget() -> int:
    """The reasoning budget every test uses."""
    return BUDGET


@pytest.fixture
def fresh_embeddings(talkative_llama_dir: Path) -> ReasoningEmbeddings:
    """A ReasoningEmbeddings of its own per test, so a test may wrap its methods to count calls."""
    return ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=BUDGET)
