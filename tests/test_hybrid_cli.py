"""`search-r3 index/search --mode/--fusion` and `search-r3 eval --mode ...`, in-process on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_r3 import ReasoningEmbeddings
from search_r3.cli.main import main

CORPUS = {
    "d1": "Bread goes stale as its starch recrystallises.",
    "d2": "Tides are caused by the Moon's gravity.",
    "d3": "Roman roads were paved with stone.",
    "d4": "An index speeds up a database query.",
}
QUERIES = {"q1": "why does bread go stale", "q2": "what causes tides", "q3": "how were roman roads built"}


pytestmark = pytest.mark.usefixtures("isolated_env")  # tests/conftest.py


def write_beir(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in CORPUS.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in QUERIES.items())
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    return root


def run_json(capsys, argv: list[str]) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_index_builds_both_vectors_and_search_takes_mode_and_fusion(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in CORPUS.items()))
    store = ["--path", str(tmp_path / "db"), "--model", str(tiny_llama_dir)]
    assert main(["index", str(corpus), *store]) == 0
    found = {}
    for mode, fusion in (("dense", None), ("sparse", None), ("hybrid", "rrf"), ("hybrid", "dbsf")):
        extra = ["--fusion", fusion] if fusion else []
        out = run_json(capsys, ["search", "stale bread", "--mode", mode, *extra, "--no-reasoning", *store])
        found[(mode, fusion)] = [h["id"] for h in out[0]["hits"]]
    assert found[("sparse", None)] == ["d1"]  # BM25: the only document with "stale" or "bread"
    assert len(found[("dense", None)]) == 4 and len(found[("hybrid", "rrf")]) == 4
    default = run_json(capsys, ["search", "stale bread", "--no-reasoning", *store])
    assert [h["id"] for h in default[0]["hits"]] == found[("hybrid", "rrf")]  # hybrid by default
    with pytest.raises(SystemExit) as exited:  # argparse names the choices
        main(["search", "x", "--mode", "bm25", *store])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_old_collection_asked_for_hybrid_names_the_reindex_command(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    from search_r3.store import QdrantStore

    embeddings = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu")
    with QdrantStore(embeddings, "old", path=tmp_path / "db", hybrid=False) as s:
        s.add_documents(list(CORPUS.values()), ids=list(CORPUS))
    store = ["--path", str(tmp_path / "db"), "--model", str(tiny_llama_dir), "--collection", "old"]
    assert main(["search", "bread", "--no-reasoning", *store]) == 0  # dense by default
    capsys.readouterr()
    assert main(["search", "bread", "--mode", "hybrid", "--no-reasoning", *store]) == 1
    err = capsys.readouterr().err
    assert "search-r3 index PATH --collection old-hybrid" in err and "--mode dense" in err
    assert "Traceback" not in err


def test_eval_prints_every_mode_in_one_table(
    tiny_llama_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    data = write_beir(tmp_path / "beir")
    encoded: list[int] = []
    original = ReasoningEmbeddings.encode_documents

    def counting(self, texts, *args, **kwargs):
        encoded.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(ReasoningEmbeddings, "encode_documents", counting)
    argv = ["eval", str(data), "--model", str(tiny_llama_dir), "--max-reasoning-tokens", "2"]
    plain = run_json(capsys, [*argv, "--no-bm25"])
    grid = [
        *argv,
        "--mode",
        "dense,sparse,hybrid",
        "--rrf-weights",
        "1:1,1:2",
        "--reasoning-weight",
        "0.5",
        "--doc-cache",
        str(tmp_path / "vectors"),
    ]
    payload = run_json(capsys, grid)
    systems = [row["system"] for row in payload["rows"]]
    on, off = "search-r3 (reasoning, 2 tokens)", "search-r3 (no reasoning)"
    assert systems == [
        f"{on} · dense",
        f"{on} · sparse + reasoning x0.5",
        f"{on} · hybrid rrf k=61 w=1:1",
        f"{on} · hybrid rrf k=61 w=1:1 + reasoning x0.5",
        f"{on} · hybrid rrf k=61 w=1:2",
        f"{on} · hybrid rrf k=61 w=1:2 + reasoning x0.5",
        f"{on} · hybrid dbsf",
        f"{on} · hybrid dbsf + reasoning x0.5",
        f"{off} · dense",
        "search-r3 · sparse",
        f"{off} · hybrid rrf k=61 w=1:1",
        f"{off} · hybrid rrf k=61 w=1:2",
        f"{off} · hybrid dbsf",
        "BM25",
    ]
    rows = {row["system"]: row for row in payload["rows"]}
    # the dense rows through Qdrant equal the numpy cosine rows of the plain eval
    for name, dense in ((on, f"{on} · dense"), (off, f"{off} · dense")):
        reference = next(r for r in plain["rows"] if r["system"] == name)["metrics"]
        assert rows[dense]["metrics"] == pytest.approx(reference)
    assert rows["search-r3 · sparse"]["metrics"]["RR@10"] == pytest.approx(1.0)  # each query's words
    runs_before = len(encoded)
    again = run_json(capsys, grid)
    assert len(encoded) == runs_before  # the document vectors came from --doc-cache
    assert [r["metrics"] for r in again["rows"]] == [r["metrics"] for r in payload["rows"]]

    assert main([*argv, "--mode", "dense,bm25"]) == 1
    assert "--mode" in capsys.readouterr().err
