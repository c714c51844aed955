"""`search-r3 store migrate`: local mode <-> embedded engine, resumable, verified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models

from search_r3.cli.main import main
from search_r3.store import QdrantStore, open_client, point_id
from search_r3.store_backends import folder_backend
from search_r3.store_backends.migrate import MigrationError, migrate_collection, verify_sample

TEXTS = [f"Document {i} about {'wings lift' if i % 2 else 'bread and heat'} number {i}." for i in range(40)]
IDS = [f"doc{i}" for i in range(40)]
METAS = [{"source": f"f{i % 4}.md", "n": i} for i in range(40)]


def make_store(embeddings, folder: Path, backend: str, collection: str = "search_r3") -> None:
    with QdrantStore(embeddings, collection, path=folder, backend=backend) as store:
        store.add_documents(TEXTS, ids=IDS, metadatas=METAS)


def results(embeddings, folder: Path, collection: str = "search_r3") -> list[tuple[str, float]]:
    with QdrantStore(embeddings, collection, path=folder) as store:
        hits = store.search("lift of wings", k=10, reasoning=False).hits
        return [(h.id, round(h.score, 4)) for h in hits]


@pytest.mark.parametrize(("src_backend", "dst_backend"), [("local", "edge"), ("edge", "local")])
def test_migrate_copies_everything_and_is_resumable(
    tiny_embeddings, tmp_path: Path, capsys, src_backend: str, dst_backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_store(tiny_embeddings, src, src_backend)
    make_store(tiny_embeddings, src, src_backend, collection="other")
    argv = ["store", "migrate", str(src), str(dst), "--batch-size", "16", "--json", "-q"]
    if dst_backend == "local":
        argv += ["--dst-backend", "local"]
    assert main(argv) == 0
    reports = {r["collection"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(reports) == {"search_r3", "other"}  # every collection by default
    for report in reports.values():
        assert report["copied"] == report["source_count"] == report["target_count"] == len(TEXTS)
        assert report["sampled"] == len(TEXTS) and report["created"]
    assert folder_backend(dst) == dst_backend and folder_backend(src) == src_backend
    assert results(tiny_embeddings, dst) == results(tiny_embeddings, src)  # same hits, same scores
    with QdrantStore(tiny_embeddings, "search_r3", path=dst) as store:  # metadata travelled too
        assert store.hybrid and store.model_name == QdrantStore(tiny_embeddings, path=":memory:").model_name
        assert store.get(["doc3"])[0].metadata == METAS[3]
    assert main([*argv, "--collection", "search_r3"]) == 0  # again: nothing to copy
    [again] = json.loads(capsys.readouterr().out)
    assert again["copied"] == 0 and again["skipped"] == len(TEXTS) and not again["created"]


def test_an_interrupted_migration_continues(tiny_embeddings, tmp_path: Path) -> None:
    make_store(tiny_embeddings, tmp_path / "src", "local")

    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    source, target = open_client(tmp_path / "src"), open_client(tmp_path / "dst")
    try:
        with pytest.raises(KeyboardInterrupt):
            migrate_collection(source, target, "search_r3", batch_size=10, progress=stop_after_two_batches)
        assert target.count("search_r3").count == 20
        report = migrate_collection(source, target, "search_r3", batch_size=10)
        assert (report.copied, report.skipped, report.target_count) == (20, 20, 40)
    finally:
        source.close()
        target.close()


def test_a_difference_is_an_error(tiny_embeddings, tmp_path: Path, capsys) -> None:
    make_store(tiny_embeddings, tmp_path / "src", "edge")
    source, target = open_client(tmp_path / "src"), open_client(tmp_path / "dst", backend="local")
    try:
        migrate_collection(source, target, "search_r3")
        [point] = target.retrieve("search_r3", [point_id("doc5")], with_payload=True, with_vectors=True)
        changed = dict(point.vector, dense=list(np.roll(point.vector["dense"], 1)))
        target.upsert("search_r3", [models.PointStruct(id=point.id, vector=changed, payload=point.payload)])
        with pytest.raises(MigrationError, match="other vectors"):
            verify_sample(source, target, "search_r3", sample_size=40)
        extra = models.PointStruct(id=point_id("extra"), vector=changed, payload={"doc_id": "extra"})
        target.upsert("search_r3", [extra])
    finally:
        source.close()
        target.close()
    assert main(["store", "migrate", str(tmp_path / "src"), str(tmp_path / "dst"), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the source holds 40 points, the target 41" in err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["store", "migrate", "{src}", "{src}"], "SRC and DST are the same folder"),
        (["store", "migrate", "{tmp}/nowhere", "{tmp}/dst"], "No store folder"),
        (["store", "migrate", "{src}", "{tmp}/dst", "--collection", "nope"], "No collection 'nope'"),
        (["store", "migrate", "{src}", "{tmp}/dst", "--dst-backend", "local"], None),
    ],
)
def test_migrate_errors_are_one_line(tiny_embeddings, tmp_path: Path, capsys, argv, message) -> None:
    make_store(tiny_embeddings, tmp_path / "src", "edge")
    filled = [a.format(src=tmp_path / "src", tmp=tmp_path) for a in argv]
    code = main([*filled, "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    if message is None:
        assert code == 0 and folder_backend(tmp_path / "dst") == "local"
        return
    assert code == 1 and len(err) == 1 and message in err[0]
