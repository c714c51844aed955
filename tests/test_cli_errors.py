"""Bad input at the ``search-r3`` command line: one ``error:`` line that names the fix, a non-zero
exit code, no traceback, and no model loaded when the arguments alone are wrong.

Argument mistakes fail while argparse parses (exit 2, the subcommand's usage); mistakes found
later (a file's content, the store, a model folder) exit 1. Each row of a table is one case.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from search_r3.cli.main import main
from search_r3.model import ReasoningEmbeddings

pytestmark = pytest.mark.usefixtures("isolated_env")  # tests/conftest.py


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Every model load the command attempts (the load itself still runs)."""
    seen: list[str] = []
    original = ReasoningEmbeddings.from_pretrained.__func__

    def counting(cls, name, **kwargs):
        seen.append(str(name))
        return original(cls, name, **kwargs)

    monkeypatch.setattr(ReasoningEmbeddings, "from_pretrained", classmethod(counting))
    return seen


def write_beir(root: Path, relevance: str = "1") -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = {"d1": "Wings make lift.", "d2": "Heat flows by conduction.", "d3": "Shock waves are thin."}
    queries = {"q1": "what makes lift?", "q2": "how does heat flow?"}
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (root / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t{relevance}\nq2\td2\t1\n")
    return root


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


# -- argument mistakes: exit 2 with the subcommand's usage, nothing loaded ---------------------
# (id, argv with {data} {file} {tmp} placeholders, subcommand, text the error line must hold)
ARGUMENT_CASES = [
    (
        "prefix-of-another-option",
        ["search", "q", "--coll", "papers"],  # once silently taken as --collection
        "search",
        "unrecognized arguments: --coll",
    ),
    ("unknown-option", ["search", "x", "--topk", "3"], "search", "unrecognized arguments: --topk 3"),
    ("device", ["search", "q", "--device", "foo"], "search", "use cpu, cuda, cuda:N or mps"),
    ("dtype", ["search", "q", "--dtype", "foo"], "search", "use one of float32"),
    ("empty-query", ["search", ""], "search", "a query is empty; pass some text"),
    ("blank-query", ["search", "   "], "search", "a query is empty; pass some text"),
    ("top-k-zero", ["search", "q", "-k", "0"], "search", "must be a whole number >= 1"),
    (
        "negative-budget",
        ["search", "q", "--max-reasoning-tokens", "-1"],
        "search",
        "must be a whole number >= 0",
    ),
    (
        "fractional-budget",
        ["search", "q", "--max-reasoning-tokens", "1.5"],
        "search",
        "is not a whole number",
    ),
    (
        "init-max-length",
        ["init", "base", "{tmp}/out", "--max-length", "-5"],
        "init",
        "must be a whole number >= 1",
    ),
    ("init-dtype", ["init", "base", "{tmp}/out", "--dtype", "float8"], "init", "use one of float32"),
    ("init-output-is-a-file", ["init", "base", "{file}"], "init", "is a file; pass a folder"),
    (
        "init-missing-template",
        ["init", "base", "{tmp}/out", "--chat-template", "{tmp}/no.jinja"],
        "init",
        "no file",
    ),
    ("init-ngram", ["init", "base", "{tmp}/out", "--no-repeat-ngram-size", "-1"], "init", ">= 0"),
    ("eval-depth-zero", ["eval", "{data}", "--depth", "0"], "eval", "must be a whole number >= 1"),
    ("eval-max-queries", ["eval", "{data}", "--max-queries", "-1"], "eval", "must be a whole number >= 1"),
    (
        "eval-metric",
        ["eval", "{data}", "--metrics", "bogus"],
        "eval",
        "use ir-measures names such as nDCG@10",
    ),
    (
        "eval-output-folder",
        ["eval", "{data}", "--output", "{tmp}/missing/x.md"],
        "eval",
        "does not exist; create",
    ),
    (
        "eval-output-is-folder",
        ["eval", "{data}", "--output", "{tmp}"],
        "eval",
        "is a folder; pass a file name",
    ),
    ("eval-data", ["eval", "{tmp}/nowhere"], "eval", "no folder"),
    ("demo-top-k", ["demo", "-k", "0"], "demo", "must be a whole number >= 1"),
    ("index-device", ["index", "{tmp}", "--device", "cuda:7x"], "index", "unknown device"),
    ("empty-store-path", ["search", "q", "--path", ""], "search", "the store path is empty"),
    ("store-path-is-a-file", ["index", "{tmp}", "--path", "{file}"], "index", "is a file; the store path"),
    ("path-and-url", ["search", "q", "--path", "{tmp}", "--url", "http://127.0.0.1:9"], "search", "not both"),
]


@pytest.mark.parametrize(
    ("argv", "command", "expected"), [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES]
)
def test_argument_mistakes_fail_before_any_model_loads(
    argv: list[str], command: str, expected: str, tmp_path: Path, loads: list[str], capsys
) -> None:
    (tmp_path / "a-file").write_text("x")
    values = {
        "data": str(write_beir(tmp_path / "beir")),
        "file": str(tmp_path / "a-file"),
        "tmp": str(tmp_path),
    }
    with pytest.raises(SystemExit) as done:
        main([arg.format(**values) for arg in argv])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"usage: search-r3 {command} ")  # the subcommand's usage, not the top level's
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith(f"search-r3 {command}: error:"), err
    assert expected in lines[0]
    assert loads == []


# -- mistakes found after parsing: exit 1, one error line ----------------------------------------


def strip_chat_template(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((dst / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (dst / "tokenizer_config.json").write_text(json.dumps(config))
    return dst


def run_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_relevance_inf_in_qrels(tmp_path: Path, capsys) -> None:
    data = write_beir(tmp_path / "beir", relevance="inf")
    line = run_error(["eval", str(data), "--reasoning", "none"], capsys)
    assert "relevance 'inf' is not a finite number; write a graded relevance such as 0, 1 or 2" in line


def test_base_without_chat_template(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    base = strip_chat_template(tiny_llama_dir, tmp_path / "no-template")
    line = run_error(["init", str(base), str(tmp_path / "out")], capsys)
    assert "has no chat template" in line and "--chat-template FILE" in line
    assert not (tmp_path / "out").exists()


def test_base_folder_that_does_not_exist(tmp_path: Path, capsys) -> None:
    line = run_error(["init", str(tmp_path / "nope"), str(tmp_path / "out")], capsys)
    assert "No base model folder at" in line and "smollm2-135m-instruct" in line


def test_empty_stdin_query(tmp_path: Path, monkeypatch, loads: list[str], capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    line = run_error(["search", "-", "--path", str(tmp_path / "db")], capsys)
    assert "stdin is empty; pipe some text in" in line
    assert loads == []


def test_missing_collection_is_reported_before_the_model_loads(
    tiny_llama_dir: Path, tmp_path: Path, loads: list[str], capsys
) -> None:
    argv = [
        "search",
        "q",
        "--model",
        str(tiny_llama_dir),
        "--path",
        str(tmp_path / "db"),
        "--collection",
        "nope",
    ]
    line = run_error(argv, capsys)
    assert "No collection 'nope'" in line and "search-r3 index PATH --collection nope" in line
    assert loads == []


def test_adapter_cycle(tmp_path: Path, capsys) -> None:
    cycle = tmp_path / "cycle"
    cycle.mkdir()
    (cycle / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(cycle)}))
    line = run_error(
        ["eval", str(write_beir(tmp_path / "beir")), "--model", str(cycle), "--reasoning", "on"], capsys
    )
    assert "Adapter cycle" in line and "base_model_name_or_path" in line


def test_settings_entry_that_is_not_an_object(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "oops"
    shutil.copytree(tiny_llama_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["search_r3"] = "oops"
    (model / "config.json").write_text(json.dumps(config))
    data = write_beir(tmp_path / "beir")
    line = run_error(["eval", str(data), "--model", str(model), "--reasoning", "off", "--no-bm25"], capsys)
    assert "'search_r3' entry of the model config must be a JSON object" in line and "search-r3 init" in line


def test_nothing_to_evaluate_is_an_error_even_when_quiet(tmp_path: Path, capsys) -> None:
    line = run_error(
        ["eval", str(write_beir(tmp_path / "beir")), "--reasoning", "none", "--no-bm25", "-q"], capsys
    )
    assert "Nothing to evaluate" in line and "drop one of them" in line


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    def broken(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("search_r3.cli.search_cmd.check_collection", broken)
    line = run_error(["search", "q", "--path", str(tmp_path / "db")], capsys)
    assert "unexpected RuntimeError: boom second line" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="boom"):
        main(["search", "q", "--path", str(tmp_path / "db"), "--debug"])
    monkeypatch.setenv("SEARCH_R3_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["search", "q", "--path", str(tmp_path / "db")])


# -- verbosity and stdin -------------------------------------------------------------------------


def test_no_library_debug_lines_by_default_and_quiet_drops_notes(tmp_path: Path, capsys) -> None:
    data = str(write_beir(tmp_path / "beir"))
    assert main(["eval", data, "--reasoning", "none"]) == 0
    captured = capsys.readouterr()
    assert "| BM25 |" in captured.out
    assert "DEBUG" not in captured.err and "INFO" not in captured.err and "bm25s" not in captured.err
    assert "search-r3: " in captured.err  # the progress note
    assert main(["eval", data, "--reasoning", "none", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "| BM25 |" in captured.out and captured.err == ""
    assert main(["-q", "eval", data, "--reasoning", "none"]) == 0  # before the command too
    assert capsys.readouterr().err == ""


def test_dash_reads_the_query_from_stdin(tiny_llama_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bread.md").write_text("Bread goes stale as its starch recrystallises.\n")
    store = ["--path", str(tmp_path / "db"), "--model", str(tiny_llama_dir)]
    assert main(["index", str(docs), *store, "-q"]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("why does bread go stale?\n"))
    assert main(["search", "-", *store, "--max-reasoning-tokens", "2", "--json", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no notes, no progress bars
    results = json.loads(captured.out)
    assert [r["query"] for r in results] == ["why does bread go stale?"]
    assert results[0]["hits"][0]["id"].endswith("bread.md")
