"""Fixtures for the llama-index-search-r3 tests (the tiny models come from the repository's conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def make_talkative(model_dir: Path, out: Path, word: str = "ĠParis") -> Path:
    """A copy of a tiny model whose reasoning starts with ``word``.

    The random tiny models only ever write newlines, which decode to empty reasoning; that would
    let a test pass even if the reasoning text were lost on the way. The LM head is untied and the
    row of ``word`` set to 1.5x the row of the newline, so greedy decoding picks ``word`` first.
    """
    import torch

    shutil.copytree(model_dir, out)
    loaded = ReasoningEmbeddings.from_pretrained(out, device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    head = model.get_input_embeddings().weight.detach().clone()
    head[tokenizer.convert_tokens_to_ids(word)] = 1.5 * head[tokenizer.convert_tokens_to_ids("Ċ")]
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False)
    model.lm_head.weight = torch.nn.Parameter(head)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def talkative_llama_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama, biased so that its (greedy) reasoning is non-empty text."""
    return make_talkative(tiny_llama_dir, tmp_path_factory.mktemp("li-models") / "talkative-llama")


@pytest.fixture
def fresh_embeddings(talkative_llama_dir: Path) -> ReasoningEmbeddings:
    """A ReasoningEmbeddings of its own per test, so a test may wrap its methods to count calls."""
    return ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=BUDGET)


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, str], list[tuple[tuple, dict]]]:
    """Wrap ``obj.name`` (an instance method) so every call is recorded, then passed through."""

    def wrap(obj: Any, name: str) -> list[tuple[tuple, dict]]:
        calls: list[tuple[tuple, dict]] = []
        original = getattr(obj, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(obj, name, recording)
        return calls

    return wrap
