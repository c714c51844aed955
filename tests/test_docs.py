"""The documentation site: every example it shows runs, and the site builds in strict mode.

Each ``docs/examples/*.py`` is executed as a script (``runpy``, ``__main__``) on the tiny random
Llama model (``SEARCH_R3_MODEL``), and what it computed is checked through the globals it leaves
behind: a tiny random model ranks at random, so the checks are about behaviour (shapes, norms,
reasoning returned, no duplicates, filters honoured, saved == loaded, ...), never about relevance.
``docs/examples/*.sh`` run under bash the same way. The site is built with ``mkdocs build
--strict`` into a temporary folder: a broken link, a missing anchor, a missing snippet file or
an API object that does not exist fails the build.
"""

from __future__ import annotations

import html
import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
SNIPPET = re.compile(r'--8<--\s+"([^"]+)"')

Check = Callable[[dict[str, Any], str, Path], None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register the checks of one example file."""

    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def example_files() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".sh"))


def included_files() -> set[str]:
    """Paths (relative to the repository) that pages include with pymdownx.snippets."""
    return {m for page in DOCS.rglob("*.md") for m in SNIPPET.findall(page.read_text(encoding="utf-8"))}


def shown_configs() -> list[str]:
    """Config files shown on the site (the docs' own and those the training package ships)."""
    return sorted(p for p in included_files() if p.endswith((".yaml", ".yml")))


def unit_norm(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(np.asarray(vectors), axis=1), 1.0, atol=1e-4))


# -- bookkeeping: every example is shown on a page and checked here ------------------------------
def test_every_example_is_checked_and_shown():
    shown = included_files()
    files = example_files()
    assert files, "docs/examples is empty"
    missing_checks = sorted(set(files) - set(CHECKS))
    assert not missing_checks, f"examples without checks in tests/test_docs.py: {missing_checks}"
    unknown = sorted(set(CHECKS) - set(files))
    assert not unknown, f"checks for examples that do not exist: {unknown}"
    in_examples = sorted(p.name for p in EXAMPLES.iterdir() if p.is_file() and p.suffix != ".pyc")
    not_shown = sorted(f for f in in_examples if f"docs/examples/{f}" not in shown)
    assert not not_shown, f"examples no page includes: {not_shown}"
    # code shown on the site comes from docs/examples (executed) or is a config (parsed)
    stray = sorted(p for p in shown if not p.startswith("docs/examples/") and p not in shown_configs())
    assert not stray, f"pages include code that no test runs: {stray}"


# -- running the examples -----------------------------------------------------------------------
#: What the examples load when SEARCH_R3_MODEL is not set: the model shipped in the package.
SHIPPED_MODEL = "search-r3-smollm2-135m"

# Installed in this process and, as sitecustomize, in every Python an example starts: any
# connection that leaves the machine fails, so an example that reaches for the network fails.
NETWORK_GUARD = """
import socket

_connect = socket.socket.connect
_LOCAL = ("127.0.0.1", "::1", "localhost")


def _guarded(self, address):
    local = isinstance(address, tuple) and address[0] in _LOCAL
    if self.family == getattr(socket, "AF_UNIX", None) or local:
        return _connect(self, address)
    raise OSError(f"network is off for the docs examples (tried {address!r})")


socket.socket.connect = _guarded
"""


def example_model() -> str:
    """The model the examples ran on (the tiny one in fast runs, the shipped one in slow runs)."""
    return os.environ.get("SEARCH_R3_MODEL", SHIPPED_MODEL)


@pytest.fixture
def network_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection leaves the machine, in this process and in the Python processes it starts."""
    import socket

    guard_dir = tmp_path / "network-guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(guard_dir), *sys.path]))
    namespace: dict[str, Any] = {}
    exec(NETWORK_GUARD, namespace)  # the guard's own source, written above
    monkeypatch.setattr(socket.socket, "connect", namespace["_guarded"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def example_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, network_off: None) -> Path:
    """Examples run in an empty folder with the network off; the default store is a temporary one."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SEARCH_R3_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    monkeypatch.delenv("SEARCH_R3_MODEL", raising=False)
    return work


@pytest.fixture
def tiny_example_env(example_env: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fast variant: the documented switch (SEARCH_R3_MODEL) points the examples at the tiny model."""
    monkeypatch.setenv("SEARCH_R3_MODEL", str(tiny_llama_dir))
    return example_env


def run_python_example(name: str, work: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name)])
    namespace = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    CHECKS[name](namespace, out, work)


@pytest.mark.parametrize("name", [n for n in example_files() if n.endswith(".py")])
def test_python_example(name: str, tiny_example_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch):
    run_python_example(name, tiny_example_env, capsys, monkeypatch)


def uses_a_model(name: str) -> bool:
    """Examples that load a search-r3 model (the others build their own tiny data and models)."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    return "SEARCH_R3_MODEL" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in example_files() if uses_a_model(n)])
def test_example_runs_offline_on_the_shipped_model(
    name: str, example_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch
):
    """As a user runs it: no SEARCH_R3_MODEL, no network; the shipped model is the default."""
    if name.endswith(".sh"):
        run_shell_example(name, example_env)
    else:
        run_python_example(name, example_env, capsys, monkeypatch)


def test_examples_default_to_the_shipped_model_and_document_the_switch():
    for name in example_files():
        if not uses_a_model(name):
            continue
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        assert SHIPPED_MODEL in text, f"{name}: the default model is not the shipped one"
        assert "SEARCH_R3_MODEL=ytgui/Search-R3.0-Small" in text or name == "sft_quick.sh", (
            f"{name}: the header does not show how to run it on the Hub model"
        )


@pytest.mark.parametrize("name", [n for n in example_files() if n.endswith(".sh")])
def test_shell_example(name: str, tiny_example_env: Path):
    run_shell_example(name, tiny_example_env)


def run_shell_example(name: str, example_env: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not available")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [bash, "-euo", "pipefail", str(EXAMPLES / name)],
        cwd=example_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    CHECKS[name]({}, proc.stdout, example_env)


@pytest.mark.parametrize("path", shown_configs())
def test_config_parses(path: str):
    """Configs shown on the site parse with the real parsers: a renamed or removed option fails here.

    GPU configs are parsed with ``--bf16 false`` added (transformers refuses bf16 on a CPU-only
    machine); every other field goes through the dataclasses' own validation.
    """
    name = Path(path).name
    full = str(ROOT / path)
    if "accelerate" in path:
        from accelerate.commands.config.config_args import load_config_from_file

        config = load_config_from_file(full)  # unknown keys raise
        assert config.num_processes >= 1
        return
    if name.startswith("sft"):
        from search_r3_train.sft import build_parser
    elif name.startswith("rl"):
        from search_r3_train.rl.cli import build_parser
    else:
        pytest.fail(f"{path}: name an accelerate, sft_* or rl_* config so this test knows its parser")
    parsed = build_parser().parse_args_and_config(["--config", full, "--bf16", "false"])
    training_args = parsed[-1]
    assert training_args.output_dir and training_args.learning_rate > 0


# -- what each example must have done ------------------------------------------------------------
@check("quickstart.py")
def _quickstart(g: dict[str, Any], out: str, work: Path) -> None:
    emb, docs, result = g["emb"], g["documents"], g["result"]
    assert g["doc_vectors"].shape == (len(docs), emb.embedding_dimension)
    assert unit_norm(g["doc_vectors"]) and unit_norm(result.embeddings)
    assert len(result.reasoning) == 1 and isinstance(result.reasoning[0], str)
    assert 0 < result.generated_tokens[0] <= 64
    # the printed ranking is the cosine order of the vectors
    printed = re.findall(r"^(\d)\. (-?\d\.\d{3})  (.+)$", out, flags=re.M)
    assert [p[2] for p in printed] == [docs[i] for i in np.argsort(-g["scores"][0])]
    # greedy decoding: encoding the query again gives the same vector
    again = emb.encode_queries(g["queries"], max_reasoning_tokens=64)
    np.testing.assert_allclose(again.embeddings, result.embeddings, atol=1e-5)


@check("reasoning_modes.py")
def _reasoning_modes(g: dict[str, Any], out: str, work: Path) -> None:
    direct, reasoned, short = g["direct"], g["reasoned"], g["short"]
    assert direct.reasoning == ["", ""] and direct.generated_tokens == [0, 0]
    assert not direct.forced.any()
    assert all(0 < n <= 64 for n in reasoned.generated_tokens)
    assert all(n <= 8 for n in short.generated_tokens)
    assert "reproducible: True" in out
    assert "instance default off: True" in out
    # reasoning changes the vector: the reasoned and the direct embeddings differ
    assert not np.allclose(direct.embeddings, reasoned.embeddings, atol=1e-3)
    assert unit_norm(g["sampled"].embeddings)


@check("sentence_transformers_usage.py")
def _sentence_transformers(g: dict[str, Any], out: str, work: Path) -> None:
    from search_r3 import ReasoningEmbeddings

    model, docs = g["model"], g["documents"]
    assert g["doc_vectors"].shape == (2, model.get_embedding_dimension())
    assert "identical after save/load: True" in out
    encoded = g["encoded"]
    assert encoded.embeddings.shape[0] == 2 and len(encoded.reasoning) == 2
    assert all(isinstance(r, str) for r in encoded.reasoning)
    # one implementation: the sentence-transformers vectors are ReasoningEmbeddings' vectors
    direct = ReasoningEmbeddings.from_pretrained(example_model(), device="cpu")
    np.testing.assert_allclose(direct.encode_documents(docs), g["doc_vectors"], atol=1e-5)
    no_reasoning = direct.encode_queries(["why is the sky blue?"], reasoning=False).embeddings
    np.testing.assert_allclose(no_reasoning, g["fast"], atol=1e-5)


@check("qdrant_embedded.py")
def _qdrant_embedded(g: dict[str, Any], out: str, work: Path) -> None:
    assert "documents: 4" in out  # the second add_documents stored nothing twice
    assert "after reopening: 4" in out  # the folder persisted
    hits = g["result"].hits
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    assert {h.id for h in g["art_only"].hits} == {"louvre", "prado"}  # the filter kept art only
    assert isinstance(g["result"].reasoning, str)
    # scores are cosines of the (reasoned) query vector and the stored document vectors
    emb = g["emb"]
    query = emb.encode_queries(["famous paintings"], reasoning=False).embeddings[0]
    doc = emb.encode_documents([g["texts"][g["ids"].index(g["art_only"].hits[0].id)]])[0]
    assert abs(float(query @ doc) - g["art_only"].hits[0].score) < 1e-4


@check("qdrant_server.py")
def _qdrant_server(g: dict[str, Any], out: str, work: Path) -> None:
    assert "documents: 2" in out
    assert len(g["result"].hits) == 1
    assert g["result"].hits[0].id in {"sharding", "replication"}


@check("langchain_usage.py")
def _langchain(g: dict[str, Any], out: str, work: Path) -> None:
    embeddings, reasoned = g["embeddings"], g["reasoned"]
    assert len(g["query_vector"]) == embeddings.embedding_dimension
    # greedy: embed_query gives the vector the example took from encode_query (one generation)
    np.testing.assert_allclose(embeddings.embed_query(g["QUESTION"]), g["query_vector"], atol=1e-5)
    assert [d.id for d in g["batched"][0]] == [d.id for d in g["hits"]]
    assert len(g["batched"]) == 2 and len(g["batched"][1]) == 2
    hits = g["hits"]
    assert len(hits) == 2 and hits[0].metadata["score"] >= hits[1].metadata["score"]
    assert all(d.metadata["reasoning"] == reasoned.reasoning[0] for d in hits)
    assert {d.id for d in g["museums_only"]} == {"louvre", "prado"}  # k=3, but the filter leaves two
    assert g["result"]["answer"] == "The Louvre, in Paris [museums.md]."
    assert [d.id for d in g["result"]["documents"]] == [d.id for d in hits]
    (found, score), *_ = g["vector_store"].similarity_search_with_score(g["QUESTION"], k=1)
    assert found.page_content == hits[0].page_content  # same vectors, same cosine ranking
    assert abs(score - hits[0].metadata["score"]) < 1e-4


@check("llamaindex_usage.py")
def _llamaindex(g: dict[str, Any], out: str, work: Path) -> None:
    nodes = g["nodes"]
    assert len(nodes) == 2 and nodes[0].score >= nodes[1].score
    expected = g["embed_model"].encode_query(g["QUESTION"]).reasoning[0]
    assert all(n.node.metadata["reasoning"] == expected for n in nodes)
    assert all(isinstance(n.node.metadata["forced"], bool) for n in nodes)
    assert len(g["response"].source_nodes) == 2
    assert [n.node.node_id for n in g["async_nodes"]] == [n.node.node_id for n in nodes]
    assert len(g["query_vectors"]) == 2 and len(g["query_vectors"][0]) == g["embed_model"].embedding_dimension
    # the reopened collection answers from the stored vectors: the same best node
    assert out.splitlines()[-1] == f"reopened: {nodes[0].node.get_content()}"


@check("training_data.py")
def _training_data(g: dict[str, Any], out: str, work: Path) -> None:
    from search_r3_train.data import read_jsonl

    assert [bool(e.reasoning) for e in g["examples"]] == [True, False, False]
    assert "bad.jsonl:2:" in out and '"pos" is empty' in out  # file and line of the problem
    mined = read_jsonl(work / "train-hn.jsonl")
    assert len(mined) == 3
    for before, after in zip(g["examples"], mined, strict=True):
        assert after.neg[: len(before.neg)] == before.neg  # given negatives kept first
        assert not set(after.neg) & set(after.pos)  # a positive never becomes a negative
        assert len(after.neg) == len(set(after.neg)) <= len(before.neg) + 2
    assert len(mined[0].neg) > len(g["examples"][0].neg)  # BM25 found more for the bread query


@check("sft_quick.sh")
def _sft_quick(g: dict[str, Any], out: str, work: Path) -> None:
    from search_r3 import ReasoningEmbeddings

    assert "search-r3-train sft finished" in out
    assert re.search(r"trained model loads: \(1, \d+\)", out)
    # two optimiser steps changed the weights: the same document gets another vector
    text = ["Copper tape keeps slugs away."]
    start = ReasoningEmbeddings.from_pretrained(example_model(), device="cpu")
    trained = ReasoningEmbeddings.from_pretrained(work / "runs" / "sft-quick", device="cpu")
    assert trained.embedding_dimension == start.embedding_dimension
    assert not np.allclose(start.encode_documents(text), trained.encode_documents(text), atol=1e-6)


@check("rl_environment.py")
def _rl_environment(g: dict[str, Any], out: str, work: Path) -> None:
    local, naive, n = g["local"], g["naive"], g["NUM_DOCS"]
    steps = local.history[1:]
    assert len(steps) == g["STEPS"] and local.history[0].rows_encoded == n  # encoded once at the start
    assert all(0 < s.rows_encoded <= 0.10 * n for s in steps)  # the local refresh stays under 10%
    assert all(s.rows_encoded == n for s in naive.history)  # the naive one re-encodes everything
    # rewards on the locally refreshed cache agree with those on a fully re-encoded corpus
    np.testing.assert_allclose(g["local_rewards"], g["naive_rewards"], atol=0.02)
    # every relevant document of the last step was re-encoded with the last policy
    assert all(int(local.versions[r[0]]) == local.step_count for r in g["relevant"])


@check("rl_custom_reward.py")
def _rl_custom_reward(g: dict[str, Any], out: str, work: Path) -> None:
    import math

    from search_r3_train.rl.rewards import make_reward

    assert type(make_reward("top3_hit")).__name__ == "Top3Hit"
    printed = dict(re.findall(r"^\s*(\w+): (-?\d\.\d{4})$", out, flags=re.M))
    # documents 1 (gain 2) and 4 (gain 1) rank 2nd and 3rd: the metrics by hand
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert float(printed["ndcg"]) == round(dcg / ideal, 4)
    assert float(printed["rr"]) == 0.5 and float(printed["top3_hit"]) == 1.0
    assert float(printed["margin"]) == round((0.7 - 0.9) / 2, 4)


@check("cli_tour.sh")
def _cli_tour(g: dict[str, Any], out: str, work: Path) -> None:
    import json

    assert "indexed 4 documents" in out
    assert "query: why does bread go stale?" in out
    assert len(re.findall(r"^  [12]\. ", out, flags=re.M)) == 2  # -k 2 hits, ranked
    results = json.loads((work / "hits.json").read_text())
    assert results[0]["reasoning"] == "" and not results[0]["forced"]  # --no-reasoning
    assert results[0]["hits"] and all(h["metadata"]["topic"] == "food" for h in results[0]["hits"])
    # the evaluation table has the three systems; BM25 finds the one judged document first
    assert re.search(r"^\| BM25 \| 1\.0000 \|", out, flags=re.M)
    assert "search-r3 (reasoning" in out and "search-r3 (no reasoning)" in out


# -- the build hooks (docs/hooks.py) ------------------------------------------------------------
def load_hooks() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("search_r3_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_include_section_embeds_recorded_figures(tmp_path: Path):
    hooks = load_hooks()
    docs = tmp_path / "docs"
    docs.mkdir()
    config = {"repo_url": "https://example.org/repo"}
    # missing file: the page says so
    assert "Not yet measured" in hooks.include_section("docs/r.md", "Env", "benchmarks.md", docs, config)
    (tmp_path / "bench").mkdir()
    (docs / "r.md").write_text(
        "# Results\n\n## Env efficiency\n\n```bash\n# not a heading\npython x.py\n```\n\n"
        "### Variants\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n"
        "see [code](../bench/x.py) and [p](other.md#s)\n\n"
        "## Next section\n\nleft out\n"
    )
    text = hooks.include_section("docs/r.md", "Env", "guides/page.md", docs, config)
    assert "python x.py" in text and "# not a heading" in text  # fenced lines are not headings
    assert "| 1 | 2 |" in text and "left out" not in text  # stops at the next section
    assert "\n### Variants" in text  # sub-headings sit below the including page's section
    assert "(https://example.org/repo/blob/main/bench/x.py)" in text  # outside docs: a repository link
    assert "(../other.md#s)" in text  # inside docs: relative to the including page
    assert "[`docs/r.md`](../r.md)" in text  # the source is named
    # a heading that is not there: a link to the file instead of silently nothing
    assert "See [`docs/r.md`]" in hooks.include_section("docs/r.md", "Nope", "benchmarks.md", docs, config)


def test_cli_reference_is_the_help_output():
    from search_r3.cli.main import build_parser

    hooks = load_hooks()
    text = hooks.cli_reference("search-r3")
    for name, sub in hooks._subcommands(build_parser()).items():
        assert f"### `search-r3 {name}`" in text
        with hooks._fixed_width():
            assert sub.format_help().strip() in text  # the whole help, verbatim


def parameter_defaults(cls: Any) -> dict[str, str | None]:
    """What the API reference's parameter table shows per documented parameter (None: "required")."""
    (section,) = [s for s in cls.docstring.parse("google") if s.kind.value == "parameters"]
    return {p.name: None if p.default is None else str(p.default) for p in section.value}


def test_api_reference_shows_the_defaults_of_pydantic_fields():
    """The LangChain classes are pydantic models: their fields' defaults read as defaults, not "required"."""
    griffe = pytest.importorskip("griffe", reason="the docs extras are not installed: pip install -e .[docs]")
    paths = [ROOT / "integrations" / "langchain", ROOT]
    extension = griffe.load_extensions(f"{DOCS / 'griffe_pydantic.py'}:PydanticInit")
    package = griffe.load("langchain_search_r3", search_paths=paths, extensions=extension)
    retriever = parameter_defaults(package["SearchR3Retriever"])
    assert retriever["store"] is None  # the one field without a default
    assert retriever["k"] == "4" and retriever["mode"] == retriever["query_cache"] == "None"
    embeddings = parameter_defaults(package["SearchR3Embeddings"])
    assert embeddings["show_progress"] == "False" and embeddings["model_kwargs"] == "dict()"
    assert embeddings["batch_size"] == "DEFAULT_BATCH_SIZE" and None not in embeddings.values()
    signature = [p.name for p in package["SearchR3Embeddings"].members["__init__"].parameters]
    assert signature == ["self", *embeddings]  # fields only: no property, no private attribute
    sparse = parameter_defaults(package["sparse.SearchR3SparseEmbeddings"])
    assert sparse == {
        "embeddings": "None",
        "expand": "True",
        "query_weight": "1.0",
        "reasoning_weight": "0.25",
        "settings": "None",
    }
    # without the extension (griffe reads sources, not the __init__ pydantic makes): all "required"
    plain = griffe.load("langchain_search_r3", search_paths=paths)
    assert set(parameter_defaults(plain["SearchR3Retriever"]).values()) == {None}


# -- the site -----------------------------------------------------------------------------------
def test_site_builds_strictly(tmp_path: Path):
    pytest.importorskip("material", reason="the docs extras are not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extras are not installed: pip install -e '.[docs]'")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    command = [str(mkdocs)] if mkdocs.exists() else [sys.executable, "-m", "mkdocs"]
    site = tmp_path / "site"
    proc = subprocess.run(
        [*command, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    # every example file is on some page, verbatim (a distinctive line of each)
    pages = "\n".join(
        html.unescape(re.sub(r"<[^>]+>", "", p.read_text(encoding="utf-8"))) for p in site.rglob("index.html")
    )
    for name in example_files():
        lines = [ln.strip() for ln in (EXAMPLES / name).read_text().splitlines() if len(ln.strip()) > 30]
        absent = [ln for ln in lines if ln not in pages]
        assert lines and not absent, f"{name}: lines not on the site: {absent[:3]}"
    # the CLI reference is the real --help output, generated at build time
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    from search_r3.cli.main import build_parser

    assert "search-r3 init" in cli
    assert build_parser().description.split(":")[0] in cli
    # the API reference was generated from the docstrings
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("ReasoningEmbeddings", "QueryEncodings", "SearchR3Settings", "init_model", "QdrantStore"):
        assert f'id="search_r3.{name}' in api, name
    # pydantic fields with a default are not "required" in the integrations reference
    page = (site / "reference" / "integrations" / "index.html").read_text(encoding="utf-8")
    retriever = page[page.index('id="langchain_search_r3.SearchR3Retriever"') :][:20000]
    table = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", retriever)))
    assert re.search(r"store QdrantStore The store to search .*? required k int Documents to return", table)
    assert re.search(r" k int Documents to return; .*? for one call\. 4 filter Any ", table), table[:3000]
    # nothing on the site is fetched from the internet: no CDN script or stylesheet, no web font
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in home and "assets/vendor/mermaid/mermaid.min.js" in home
    assert (site / "assets" / "vendor" / "mermaid" / "mermaid.min.js").is_file()
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="(https?://[^"]+)"', text)
        assert not [
            u for u in remote if not u.startswith(("https://search-r3.github.io", "https://github.com"))
        ], (page, remote)
    # and in a real browser, offline: the diagram drawn, the plots shown, tables that fit
    if any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        checker = runpy.run_path(str(DOCS / "check_site.py"))
        assert checker["main"]([str(site), "--pages", "", "figures", "model-card", "guides/langchain"]) == 0


def test_network_guard_refuses_outside_connections(network_off: None):
    import socket

    with pytest.raises(OSError, match="network is off"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    probe = "import socket; socket.create_connection(('192.0.2.1', 443), timeout=1)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "network is off" in proc.stderr  # started processes too


# -- what renders wrongly fails the build (docs/hooks.py RENDER_CHECKS) ---------------------------
@pytest.mark.parametrize(
    ("markdown_text", "problem"),
    [
        ("Build it with :meth:`from_pretrained` first.", "raw Sphinx role"),
        ("See :class:`~search_r3.QdrantStore`.", "raw Sphinx role"),
        ("Example:\n\n>>> emb = load()\n>>> emb.encode([])", "nested blockquotes"),
        ("The prompts:\n- **User text is data.** More text.\n- another", "list collapsed"),
        ("Steps:\n1. index\n2. search", "list collapsed"),
    ],
)
def test_render_checks_find_what_renders_wrongly(markdown_text: str, problem: str):
    import markdown

    html_text = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    found = load_hooks().render_problems(html_text, "page.md")
    assert len(found) == 1 and problem in found[0] and found[0].startswith("page.md: ")


@pytest.mark.parametrize(
    "markdown_text",
    [
        "Build it with `from_pretrained` first; see [`QdrantStore`][search_r3.QdrantStore].",
        "Example:\n\n```python\n>>> emb = load()\n:meth:`x`\n```",
        "The prompts:\n\n- **User text is data.**\n- another\n\nA - b - c, and\n-5 degrees.",
        "Inline `a\n- b` code is fine.",
    ],
)
def test_render_checks_pass_what_renders_right(markdown_text: str):
    import markdown

    html_text = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    assert load_hooks().render_problems(html_text, "page.md") == []


def test_mermaid_is_served_from_the_site_not_a_cdn(tmp_path: Path):
    hooks = load_hooks()
    vendored = DOCS / hooks.MERMAID_JS
    assert vendored.is_file() and vendored.stat().st_size > 1_000_000  # the real library, not a stub

    class Page:
        url = "guides/x/"
        file = type("F", (), {"src_uri": "guides/x.md"})()

    bundle = '<script src="../../assets/javascripts/bundle.abc.min.js"></script>'
    with_diagram = f'<pre class="mermaid"><code>flowchart LR</code></pre>{bundle}'
    out = hooks.on_post_page(with_diagram, Page(), {})
    assert '<script src="../../assets/vendor/mermaid/mermaid.min.js"></script>\n' + bundle in out
    assert hooks.on_post_page(f"<p>no diagram</p>{bundle}", Page(), {}) == f"<p>no diagram</p>{bundle}"


# -- plots (docs/plots/make_plots.py) -----------------------------------------------------------
def test_plots_are_drawn_from_the_recorded_tables_and_committed_up_to_date(tmp_path: Path):
    pytest.importorskip("matplotlib", reason="the docs extras are not installed: pip install -e '.[docs]'")
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_plots", DOCS / "plots" / "make_plots.py")
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    written = plots.main(["--out", str(tmp_path)])
    assert sorted(p.name for p in written) == sorted(plots.PLOTS)
    figures = (DOCS / "figures.md").read_text(encoding="utf-8")
    for path in written:
        committed = DOCS / "plots" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{path.name}: run docs/plots/make_plots.py"
        assert f"(plots/{path.name})" in figures and f"`{path.name}`" in figures  # shown, with its command
    # the numbers come from the tables: a value of the model card's table is in its plot
    rows = plots.read_table("docs/model-card.md", "system", after="## Results on Cranfield")
    svg = (tmp_path / "model-card-systems.svg").read_text(encoding="utf-8")
    assert f"{plots.number(rows[0]['nDCG@10']):.3f}" in svg
    with pytest.raises(plots.TableNotFound):
        plots.read_table("docs/model-card.md", "no such column")
