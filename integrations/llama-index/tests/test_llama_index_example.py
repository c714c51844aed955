"""The query engine example runs offline, end to end."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

# llama-index-vector-stores-qdrant asks for a payload index that Qdrant's local mode ignores.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "query_engine.py"


def test_example_runs_as_a_script(
    talkative_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    store = tmp_path / "qdrant"
    argv = [str(EXAMPLE), "--model", str(talkative_llama_dir), "--store-path", str(store)]
    monkeypatch.setattr(sys, "argv", [*argv, "--max-reasoning-tokens", "4", "-k", "3"])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "Reasoning: ' Paris" in out
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("  ") and line.split()[1:]]
    assert len(listed) == 3 and set(listed) <= {"louvre", "prado", "seine", "baguette"}
    answer = out.split("Answer:", 1)[1]
    assert "Where can I see famous paintings in France?" in answer  # MockLLM echoes the prompt it got
    example = runpy.run_path(str(EXAMPLE), run_name="query_engine_example")
    texts = {d.id_: d.text for d in example["DOCUMENTS"]}
    assert all(texts[doc_id] in answer for doc_id in listed)  # the retrieved context reached the LLM

    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(store))  # the index stayed on disk
    try:
        assert client.count(example["COLLECTION"]).count == len(texts)
    finally:
        client.close()


def test_readme_example_runs(
    talkative_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's complete example, on the tiny model, with its Qdrant folder in a temporary directory."""
    import re

    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(
        compile(block.replace('"search-r3-smollm2-135m"', repr(str(talkative_llama_dir))), "README", "exec"),
        namespace,
    )
    try:
        hits = namespace["retriever"].retrieve("bread")
        assert len(hits) == 2 and hits[0].node.metadata["reasoning"].startswith(" Paris")
    finally:
        namespace["client"].close()
