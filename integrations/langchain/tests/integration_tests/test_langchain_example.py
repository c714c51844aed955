"""The RAG chain example runs offline, end to end, and its chat model sees the retrieved context."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever

BUDGET = 4
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rag_chain.py"


def test_example_runs_as_a_script(
    talkative_llama_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    argv = [
        str(EXAMPLE),
        "--model",
        str(talkative_llama_dir),
        "--max-reasoning-tokens",
        str(BUDGET),
        "-k",
        "3",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "Answer:    The Louvre in Paris [museums.md]." in out
    assert "Reasoning: ' Paris" in out
    assert sum(line.startswith("  0.") or line.startswith("  -0.") for line in out.splitlines()) == 3


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model call receives."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], **kwargs: Any
    ) -> None:
        self.prompts.extend("\n".join(str(m.content) for m in batch) for batch in messages)


def test_chain_puts_retrieved_documents_in_the_prompt(fresh_embeddings, count_calls) -> None:
    example = runpy.run_path(str(EXAMPLE), run_name="rag_chain_example")
    retriever = SearchR3Retriever.from_documents(
        example["DOCUMENTS"], SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=BUDGET), k=2
    )
    queries = count_calls(fresh_embeddings, "encode_queries")
    recorder = PromptRecorder()
    llm = FakeListChatModel(responses=["canned"])
    result = example["build_chain"](retriever, llm).invoke(
        "Where is the Prado?", config={"callbacks": [recorder]}
    )
    assert len(queries) == 1
    assert result["answer"] == "canned" and len(result["documents"]) == 2
    (prompt,) = recorder.prompts
    for doc in result["documents"]:
        assert f"[{doc.metadata['source']}] {doc.page_content}" in prompt
    assert prompt.rstrip().endswith("Where is the Prado?")
    shown = {d.page_content for d in result["documents"]}
    assert all(d.page_content not in prompt for d in example["DOCUMENTS"] if d.page_content not in shown)


def test_readme_examples_run(
    talkative_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every python block of the README, in order, in one namespace, on the tiny model."""
    import re

    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)  # the README's local Qdrant folder lands here
    namespace: dict[str, Any] = {}
    for block in blocks:
        code = "\n".join(line.removeprefix("  ") for line in block.splitlines())  # indented list item
        exec(
            compile(
                code.replace('"search-r3-smollm2-135m"', repr(str(talkative_llama_dir))), "README", "exec"
            ),
            namespace,
        )
    assert namespace["result"]["answer"] == "The Louvre."
    assert namespace["hits"][0].metadata["reasoning"].startswith(" Paris")
    assert namespace["store"].embeddings is namespace["embeddings"]
