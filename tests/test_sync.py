"""Sync indexing: edits re-embedded, stale chunks removed, and convergence after kill -9 at any write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search_r3.cli.main import main
from search_r3.corpus_readers import read_documents
from search_r3.errors import InvalidInputError
from search_r3.store import HASH_KEY, QdrantStore, document_hash, open_client

PARAGRAPH = "Paragraph {i} of {name}: " + "words about wings and heat and tides " * 4


def write_corpus(root: Path, version: int) -> Path:
    """``notes/`` in two versions: v2 edits a.md, shortens b.md, deletes c.md and adds d.md."""
    notes = root / "notes"
    if notes.exists():
        shutil.rmtree(notes)
    notes.mkdir(parents=True)

    def text(name: str, n: int, edit: int | None = None) -> str:
        paragraphs = [PARAGRAPH.format(i=i, name=name) for i in range(n)]
        if edit is not None:
            paragraphs[edit] = "An edited paragraph about bread going stale. " * 3
        return "\n\n".join(paragraphs) + "\n"

    if version == 1:
        files = {"a.md": text("a", 3), "b.md": text("b", 4), "c.md": text("c", 3)}
    else:
        files = {"a.md": text("a", 3, edit=1), "b.md": text("b", 2), "d.md": text("d", 2)}
    for name, body in files.items():
        (notes / name).write_text(body)
    return notes


def stored(db: Path, collection: str = "search_r3") -> dict[str, dict]:
    """Every point's payload (and vector) by document id, read with a fresh client."""
    client = open_client(db)  # the engine the folder was made with
    try:
        points, _ = client.scroll(collection, limit=10_000, with_payload=True, with_vectors=True)
    finally:
        client.close()
    # hybrid collections name their vectors; the dense one is what the model made
    dense = [p.vector["dense"] if isinstance(p.vector, dict) else p.vector for p in points]
    by_id = {
        p.payload["doc_id"]: {**p.payload, "vector": np.asarray(v)}
        for p, v in zip(points, dense, strict=True)
    }
    assert len(by_id) == len(points)  # one point per document id
    return by_id


def assert_synced(db: Path, root: Path, embeddings, extra_ids: set[str] = frozenset()) -> None:
    """The store holds exactly the corpus (plus ``extra_ids``), with current texts and vectors."""
    docs = {d.id: d for d in read_documents([root / "notes"], chunk_chars=CHUNK, root=root)}
    points = stored(db)
    assert set(points) == set(docs) | set(extra_ids)
    ids = sorted(docs)
    vectors = embeddings.encode_documents([docs[i].text for i in ids])
    for doc_id, vector in zip(ids, vectors, strict=True):
        point = points[doc_id]
        assert point["text"] == docs[doc_id].text and point["metadata"] == docs[doc_id].metadata
        assert point[HASH_KEY] == document_hash(docs[doc_id].text, docs[doc_id].metadata)
        assert float(point["vector"] @ vector) == pytest.approx(1.0, abs=1e-3)  # embedded from this text


CHUNK = 200


def index_argv(model: Path, db: Path, *extra: str) -> list[str]:
    return [
        "index",
        "notes",
        "--model",
        str(model),
        "--path",
        str(db),
        "--chunk-chars",
        str(CHUNK),
        "--batch-size",
        "2",
        "--json",
        *extra,
    ]


def run_index(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def workdir(isolated_env: Path, monkeypatch) -> Path:
    """A folder to run the CLI in, with no user setting leaking in (``isolated_env``)."""
    root = isolated_env / "work"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def test_sync_re_embeds_edits_and_removes_what_is_gone(
    workdir: Path, tiny_llama_dir: Path, tiny_embeddings, capsys
) -> None:
    db = workdir.parent / "db"
    write_corpus(workdir, 1)
    first = run_index(capsys, index_argv(tiny_llama_dir, db))
    v1 = {d.id for d in read_documents(["notes"], chunk_chars=CHUNK)}
    assert first["added"] == len(v1) == first["count"] and first["updated"] == first["deleted"] == 0
    again = run_index(capsys, index_argv(tiny_llama_dir, db))
    assert again["unchanged"] == len(v1) and again["added"] == again["updated"] == again["deleted"] == 0

    write_corpus(workdir, 2)
    c_ids = {i for i in v1 if i.startswith("notes/c.md")}
    v2 = {d.id for d in read_documents(["notes"], chunk_chars=CHUNK)}
    summary = run_index(capsys, index_argv(tiny_llama_dir, db))  # incremental: c.md's chunks stay
    b_lost = {i for i in v1 if i.startswith("notes/b.md")} - v2
    assert summary["deleted"] == len(b_lost) > 0 and summary["updated"] >= 1
    assert summary["added"] == len(v2 - v1) and summary["count"] == len(v2) + len(c_ids)
    assert_synced(db, workdir, tiny_embeddings, extra_ids=c_ids)

    full = run_index(capsys, index_argv(tiny_llama_dir, db, "--cleanup", "full"))
    assert full["deleted"] == len(c_ids) and full["added"] == full["updated"] == 0
    assert_synced(db, workdir, tiny_embeddings)

    forced = run_index(capsys, index_argv(tiny_llama_dir, db, "--reindex"))
    assert forced["updated"] == len(v2) and forced["unchanged"] == 0


def test_an_emptied_file_loses_its_chunks(workdir: Path, tiny_llama_dir: Path, capsys) -> None:
    db = workdir.parent / "db"
    write_corpus(workdir, 1)
    run_index(capsys, index_argv(tiny_llama_dir, db))
    for name in ("a.md", "b.md", "c.md"):
        (workdir / "notes" / name).write_text("\n")
    summary = run_index(capsys, index_argv(tiny_llama_dir, db))
    assert summary["documents"] == 0 and summary["count"] == 0 and summary["deleted"] > 0


def test_moving_the_folder_duplicates_nothing(
    workdir: Path, tiny_llama_dir: Path, tiny_embeddings, capsys
) -> None:
    db = workdir.parent / "db"
    write_corpus(workdir, 1)
    first = run_index(capsys, index_argv(tiny_llama_dir, db))
    moved = workdir.parent / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(str(workdir), str(moved))
    os.chdir(moved)
    again = run_index(capsys, index_argv(tiny_llama_dir, db))
    assert again["unchanged"] == first["added"] and again["added"] == 0 and again["count"] == first["count"]
    # --root gives the same ids from anywhere
    os.chdir(moved.parent.parent)
    argv = index_argv(tiny_llama_dir, db, "--root", str(moved))
    argv[1] = str(moved / "notes")
    from_outside = run_index(capsys, argv)
    assert from_outside["unchanged"] == first["added"] and from_outside["count"] == first["count"]
    assert_synced(db, moved, tiny_embeddings)


def test_index_api_cleanup_modes(tiny_embeddings) -> None:
    with QdrantStore(tiny_embeddings, "api", path=":memory:") as store:
        metas = [{"source": "x"}, {"source": "x"}, {"source": "y"}]
        result = store.index(["one", "two", "three"], ids=["x1", "x2", "y1"], metadatas=metas)
        assert (result.added, result.updated, result.deleted, result.unchanged) == (3, 0, 0, 0)
        result = store.index(["one", "2"], ids=["x1", "x2"], metadatas=metas[:2], cleanup="incremental")
        assert (result.added, result.updated, result.deleted, result.unchanged) == (0, 1, 0, 1)
        result = store.index(["one"], ids=["x1"], metadatas=metas[:1], cleanup="incremental")
        assert result.deleted == 1 and {h.id for h in store.get(["x1", "x2", "y1"])} == {"x1", "y1"}
        result = store.index([], ids=[], metadatas=[], cleanup="incremental", sources=["y"])
        assert result.deleted == 1 and store.count() == 1  # a source with no document left
        result = store.index(["new"], ids=["z"], cleanup="full")
        assert (result.added, result.deleted) == (1, 1) and [h.id for h in store.get(["x1", "z"])] == ["z"]
        assert str(result) == "1 added, 0 updated, 1 deleted, 0 unchanged"
        with pytest.raises(InvalidInputError, match=r"no metadata\['source'\]"):
            store.index(["t"], ids=["t"], cleanup="incremental")
        with pytest.raises(InvalidInputError, match="cleanup must be"):
            store.index(["t"], ids=["t"], cleanup="everything")


# -- kill -9 at a chosen write, then run again ------------------------------------------------------

KILLER = """
import os, signal, sys
import search_r3.store as store
from search_r3.cli.main import main

when, target, at = os.environ["KILL_WHEN"], os.environ["KILL_ON"], int(os.environ["KILL_AT"])
calls = [0]

def killing(write):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if when == "before" and calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        out = write(*args, **kwargs)
        if when == "after" and calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapped

if target == "upsert":
    store.QdrantStore._upsert = killing(store.QdrantStore._upsert)
else:
    store.delete_point_ids = killing(store.delete_point_ids)
sys.exit(main(sys.argv[1:]))
"""


def run_killed(root: Path, argv: list[str], when: str, target: str, at: int) -> None:
    env = {**os.environ, "KILL_WHEN": when, "KILL_ON": target, "KILL_AT": str(at), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", KILLER, *argv], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("case", "when", "target", "at"),
    [
        ("add", "after", "upsert", 2),  # first indexing, killed after two of six batches
        ("update", "after", "upsert", 1),  # edits half written
        ("update", "before", "delete", 1),  # all written, no stale chunk deleted yet
        ("delete", "before", "delete", 1),  # --cleanup full: the deleted file's chunks not yet removed
        ("delete", "after", "delete", 1),  # killed right after the delete landed
    ],
)
def test_kill_9_then_rerun_converges(
    workdir: Path, tiny_llama_dir: Path, tiny_embeddings, capsys, case: str, when: str, target: str, at: int
) -> None:
    db = workdir.parent / "db"
    write_corpus(workdir, 1)
    extra = ("--cleanup", "full") if case == "delete" else ()
    argv = index_argv(tiny_llama_dir, db, *extra)
    if case != "add":
        run_index(capsys, argv)
        write_corpus(workdir, 2)
    before = stored(db) if db.exists() else {}

    run_killed(workdir, argv, when, target, at)
    after_kill = stored(db)
    if case == "add":
        assert 0 < len(after_kill) < len({d.id for d in read_documents(["notes"], chunk_chars=CHUNK)})
    elif target == "upsert":  # some edits landed, and nothing was deleted yet
        assert set(after_kill) >= set(before) and any(
            after_kill[i][HASH_KEY] != before[i][HASH_KEY] for i in before if i in after_kill
        )

    summary = run_index(capsys, argv)  # the re-run finishes the sync
    c_ids = {i for i in before if i.startswith("notes/c.md")}
    assert_synced(db, workdir, tiny_embeddings, extra_ids=set() if case == "delete" else c_ids)
    assert summary["count"] == len(stored(db))
    # the re-run only embeds what the killed run did not store
    if case == "add":
        assert summary["unchanged"] == len(after_kill) and summary["updated"] == 0
    if when == "before" and target == "delete":
        assert summary["added"] == summary["updated"] == 0 and summary["deleted"] > 0
    again = run_index(capsys, argv)  # and then it is a fixed point
    assert again["added"] == again["updated"] == again["deleted"] == 0


def test_incremental_cleanup_of_many_sources(tiny_embeddings) -> None:
    # past 32 sources the stale points are found in one scroll instead of one filter per source
    with QdrantStore(tiny_embeddings, "many", path=":memory:") as store:
        texts = [f"note {s} part {p}" for s in range(40) for p in range(2)]
        ids = [f"s{s}#{p}" for s in range(40) for p in range(2)]
        metas = [{"source": f"s{s}"} for s in range(40) for _ in range(2)]
        store.index([*texts, "other"], ids=[*ids, "other"], metadatas=[*metas, {"source": "elsewhere"}])
        result = store.index(texts[::2], ids=ids[::2], metadatas=metas[::2], cleanup="incremental")
        assert (result.deleted, result.unchanged, result.added) == (40, 40, 0)
        assert store.count() == 41 and store.get(["other", "s3#1", "s3#0"])[0].id == "other"


def test_kill_9_from_outside_mid_run_then_rerun_converges(
    workdir: Path, tiny_llama_dir: Path, tiny_embeddings, capsys
) -> None:
    """A SIGKILL sent by another process at whatever the indexer is doing once 10 chunks are in."""
    import re
    import time

    notes = workdir / "notes"
    notes.mkdir()
    for f in range(12):
        (notes / f"n{f:02d}.md").write_text("\n\n".join(PARAGRAPH.format(i=i, name=f) for i in range(10)))
    db = workdir.parent / "db"
    argv = index_argv(tiny_llama_dir, db)
    argv[argv.index("--batch-size") + 1] = "1"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    code = "import sys; from search_r3.cli.main import main; sys.exit(main(sys.argv[1:]))"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    process = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=workdir, env=env, **pipes)
    seen, deadline = b"", time.monotonic() + 600
    while time.monotonic() < deadline:
        seen += os.read(process.stderr.fileno(), 4096)
        done = [int(n) for n in re.findall(rb"\| *(\d+)/120 ", seen)]
        if (done and max(done) >= 10) or process.poll() is not None:
            break
    process.kill()  # SIGKILL
    process.wait()
    assert process.returncode == -signal.SIGKILL, seen[-2000:]
    partial = stored(db)
    assert 10 <= len(partial) < 120  # killed mid-run

    summary = run_index(capsys, index_argv(tiny_llama_dir, db))
    assert summary["unchanged"] == len(partial) and summary["added"] == 120 - len(partial)
    assert_synced(db, workdir, tiny_embeddings)
