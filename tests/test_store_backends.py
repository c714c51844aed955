"""One behaviour on every store engine: qdrant-client's local mode, the embedded Qdrant engine
(qdrant-edge), and a Qdrant server (only when ``QDRANT_URL`` is set).

Each test runs once per engine with the same documents and the same assertions: ids, idempotent
and resumable writes, sync and delete, typed filters, dense and hybrid search (hybrid scores equal
a fusion computed here from the two single-mode rankings), search parameters, and reopening.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _corpora import DOCS, QUERY, rrf
from qdrant_client import models

from search_r3.store import (
    HybridSettings,
    QdrantStore,
    StoreLockedError,
    StoreOptionsError,
    content_id,
    open_client,
    point_id,
)
from search_r3.store_backends import backend_name, folder_backend

METAS = {
    "wing": {"topic": "aero", "code": "123", "source": "a.md"},
    "heat": {"topic": "heat", "code": 123, "source": "a.md"},
    "shock": {"topic": "aero", "flag": True, "source": "b.md"},
    "bird": {"topic": "nature", "flag": 1, "source": "b.md"},
    "paris": {"topic": "geo", "flag": False, "source": "c.md"},
    "flutter": {"topic": "aero", "year": 1990, "source": "c.md"},
}
BACKENDS = ["local", "edge", "server"]


class Opener:
    """Opens stores on one engine: the same collection again after a close, or a fresh one."""

    def __init__(self, backend: str, folder: Path):
        self.backend = backend
        self.folder = folder
        self.collection = f"search_r3_test_{uuid.uuid4().hex[:8]}"
        self.url = os.environ.get("QDRANT_URL") if backend == "server" else None

    def __call__(self, embeddings: Any, **kwargs: Any) -> QdrantStore:
        if self.backend == "server":
            return QdrantStore(embeddings, self.collection, url=self.url, **kwargs)
        return QdrantStore(embeddings, self.collection, path=self.folder, backend=self.backend, **kwargs)

    def cleanup(self, embeddings: Any) -> None:
        if self.backend == "server":
            with self(embeddings) as store:
                store.client.delete_collection(self.collection)


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path, tiny_embeddings) -> Iterator[Opener]:
    if request.param == "server" and not os.environ.get("QDRANT_URL"):
        pytest.skip("needs a Qdrant server: set QDRANT_URL (e.g. http://localhost:6333) to run on it")
    made = Opener(request.param, tmp_path / "db")
    yield made
    made.cleanup(tiny_embeddings)


def fill(store: QdrantStore, names: list[str] | None = None) -> list[str]:
    names = list(DOCS) if names is None else names
    return store.add_documents([DOCS[n] for n in names], ids=names, metadatas=[METAS[n] for n in names])


@pytest.fixture
def store(opener: Opener, tiny_embeddings) -> Iterator[QdrantStore]:
    with opener(tiny_embeddings) as s:
        fill(s)
        yield s


def test_engine_is_the_one_asked_for(store: QdrantStore, opener: Opener) -> None:
    assert store.backend == opener.backend == backend_name(store.client)
    if opener.backend != "server":
        assert folder_backend(opener.folder) == opener.backend


def test_ids_are_deterministic_and_round_trip(store: QdrantStore) -> None:
    assert store.count() == len(DOCS)
    hits = store.get(["paris", "nope", "wing"])
    assert [h.id for h in hits] == ["paris", "wing"]
    assert hits[0].text == DOCS["paris"] and hits[0].metadata == METAS["paris"]
    found = store.client.retrieve(store.collection_name, [point_id("wing")], with_payload=True)
    assert [str(p.id) for p in found] == [point_id("wing")]
    text = "A text without an id."
    [made] = store.add_documents([text])
    assert made == content_id(text) and store.get([made])[0].text == text


def test_writes_are_idempotent_and_resume(store: QdrantStore, count_calls) -> None:
    calls = count_calls(store.embeddings, "encode_documents")
    fill(store)  # the same documents again: nothing embedded, nothing stored twice
    assert calls == [] and store.count() == len(DOCS)
    edited = dict(METAS["bird"], topic="birds")
    store.add_documents([DOCS["bird"]], ids=["bird"], metadatas=[edited])  # an edit is re-embedded
    assert len(calls) == 1 and store.get(["bird"])[0].metadata["topic"] == "birds"
    assert store.count() == len(DOCS)


def test_sync_and_delete(store: QdrantStore) -> None:
    keep = ["wing", "heat", "bird"]
    result = store.index(
        [DOCS[n] for n in keep], ids=keep, metadatas=[METAS[n] for n in keep], cleanup="incremental"
    )
    # a.md keeps both documents, b.md loses "shock"; c.md was not seen, so it stays
    assert (result.added, result.updated, result.deleted, result.unchanged) == (0, 0, 1, 3)
    assert {h.id for h in store.get(list(DOCS))} == set(DOCS) - {"shock"}
    texts, metas = [DOCS[n] for n in keep], [METAS[n] for n in keep]
    result = store.index(texts, ids=keep, metadatas=metas, cleanup="full")
    assert result.deleted == 2 and store.count() == 3
    assert store.delete(["heat", "nope"]) == 1
    assert store.delete(filter={"topic": "nature"}) == 1
    assert [h.id for h in store.get(list(DOCS))] == ["wing"]
    assert store.delete(filter={}) == 1 and store.count() == 0


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"topic": "aero"}, {"wing", "shock", "flutter"}),
        ({"code": "123"}, {"wing"}),  # the string only
        ({"code": 123}, {"heat"}),  # the integer only
        ({"code": ["123", 123]}, {"wing", "heat"}),
        ({"flag": True}, {"shock"}),  # the bool, not the integer 1
        ({"flag": 1}, {"bird"}),
        ({"flag": [False, 1]}, {"paris", "bird"}),
        ({"topic": ["geo", "nature"], "source": "b.md"}, {"bird"}),
    ],
)
def test_typed_filters(store: QdrantStore, filter: dict, expected: set[str]) -> None:
    for mode in ("dense", "hybrid"):
        hits = store.search(QUERY, k=len(DOCS), reasoning=False, mode=mode, filter=filter).hits
        assert {h.id for h in hits} == expected, mode
    native = models.Filter(
        must=[models.FieldCondition(key="metadata.year", range=models.Range(gte=1980, lt=2000))]
    )
    assert [h.id for h in store.search(QUERY, k=3, reasoning=False, filter=native).hits] == ["flutter"]


def test_dense_search_is_the_exact_cosine_ranking(store: QdrantStore) -> None:
    names = list(DOCS)
    vectors = store.embeddings.encode_documents([DOCS[n] for n in names])
    query = store.embeddings.encode_queries([QUERY], reasoning=False).embeddings[0]
    cosine = vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
    expected = [names[i] for i in np.argsort(-cosine)]
    for options in ({}, {"exact": True}, {"hnsw_ef": 8}):
        hits = store.search_by_vector(query, k=len(names), **options)
        assert [h.id for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(sorted(cosine, reverse=True), abs=1e-4)


@pytest.mark.parametrize(("weights", "k"), [((1.0, 1.0), 61), ((1.0, 3.0), 61), ((2.0, 1.0), 2)])
def test_hybrid_equals_a_fusion_computed_here(store: QdrantStore, weights: tuple, k: int) -> None:
    n = len(DOCS)
    dense = store.search(QUERY, k=n, reasoning=False, mode="dense").hits
    sparse = store.search(QUERY, k=n, reasoning=False, mode="sparse").hits
    assert len(dense) == n and 0 < len(sparse) < n
    settings = HybridSettings(fusion="rrf", rrf_k=k, dense_weight=weights[0], sparse_weight=weights[1])
    hybrid = store.search(QUERY, k=n, reasoning=False, mode="hybrid", settings=settings)
    expected = rrf([[h.id for h in dense], [h.id for h in sparse]], list(weights), k)
    assert hybrid.mode == "hybrid"
    assert {h.id: h.score for h in hybrid.hits} == pytest.approx(expected, rel=1e-6)
    scores = [h.score for h in hybrid.hits]
    assert scores == sorted(scores, reverse=True)
    assert [h.id for h in store.search(QUERY, k=2, reasoning=False, settings=settings).hits] == [
        h.id for h in hybrid.hits[:2]
    ]  # hybrid is the default mode of a new collection
    # the same query, pre-encoded: the public path for callers that batch their encodings
    vector = store.embeddings.encode_queries([QUERY], reasoning=False).embeddings[0]
    again = store.search_encoded(QUERY, vector, k=n, mode="hybrid", settings=settings)
    assert [(h.id, h.score) for h in again.hits] == [(h.id, h.score) for h in hybrid.hits]


def test_reopen_after_close(opener: Opener, tiny_embeddings) -> None:
    with opener(tiny_embeddings) as first:
        fill(first)
        before = [(h.id, round(h.score, 5)) for h in first.search(QUERY, k=4, reasoning=False).hits]
    with opener(tiny_embeddings) as again:
        assert again.count() == len(DOCS) and again.hybrid
        after = [(h.id, round(h.score, 5)) for h in again.search(QUERY, k=4, reasoning=False).hits]
        assert after == before
        fill(again)  # resumable across processes: nothing stored twice
        assert again.count() == len(DOCS)


def test_index_build_keeps_the_results(store: QdrantStore) -> None:
    before = [h.id for h in store.search(QUERY, k=len(DOCS), reasoning=False, mode="dense").hits]
    built = store.optimize(force=True)
    assert built == (store.backend == "edge")  # a server indexes by itself; local mode has no index
    assert [h.id for h in store.search(QUERY, k=len(DOCS), reasoning=False, mode="dense").hits] == before
    assert store.optimize() is False  # nothing waits for an index now


def test_one_client_per_folder(opener: Opener, tiny_embeddings) -> None:
    if opener.backend == "server":
        pytest.skip("a server serves many clients")
    with opener(tiny_embeddings), pytest.raises(StoreLockedError, match="already open"):
        opener(tiny_embeddings)


def test_a_folder_keeps_its_engine(tmp_path: Path, tiny_embeddings, caplog) -> None:
    with QdrantStore(tiny_embeddings, "c", path=tmp_path / "old", backend="local") as s:
        fill(s, ["wing"])
    with QdrantStore(tiny_embeddings, "c", path=tmp_path / "old") as s:  # no backend: the folder's own
        assert s.backend == "local" and s.count() == 1
    assert "store migrate" in caplog.text  # one line suggests the embedded engine
    with pytest.raises(StoreOptionsError, match="holds a qdrant-client local-mode store"):
        open_client(tmp_path / "old", backend="edge")
    with QdrantStore(tiny_embeddings, "c", path=tmp_path / "new") as s:
        assert s.backend == "edge"
    with pytest.raises(StoreOptionsError, match="embedded-engine"):
        open_client(tmp_path / "new", backend="local")
    with pytest.raises(StoreOptionsError, match="backend must be one of edge, local"):
        open_client(tmp_path / "x", backend="qdrant")
    with pytest.raises(StoreOptionsError, match="stores in a folder"):
        open_client(":memory:", backend="edge")


def test_cli_backend_and_search_parameters(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    import json

    from search_r3.cli.main import main

    (tmp_path / "notes").mkdir()
    for name in ("wing", "heat", "bird"):
        (tmp_path / "notes" / f"{name}.md").write_text(DOCS[name] + "\n")
    model = ["--model", str(tiny_llama_dir)]
    for backend in ("local", "edge"):
        store = ["--path", str(tmp_path / backend), "--backend", backend]
        assert main(["index", str(tmp_path / "notes"), *model, *store, "--json", "-q"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["backend"] == backend and summary["count"] == 3
        ranked = []
        for extra in ([], ["--exact"], ["--hnsw-ef", "16"]):
            argv = ["search", "wing lift", "--no-reasoning", "--mode", "dense", *extra, *model, "--json"]
            assert main([*argv, "--path", str(tmp_path / backend), "-q"]) == 0  # the folder's engine
            ranked.append([h["id"] for h in json.loads(capsys.readouterr().out)[0]["hits"]])
        assert ranked[0] == ranked[1] == ranked[2] and len(ranked[0]) == 3
    assert main(["search", "q", *model, "--path", str(tmp_path / "local"), "--backend", "edge", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a qdrant-client local-mode store" in err[0] and "store migrate" in err[0]
    with pytest.raises(SystemExit) as usage:
        main(["search", "q", "--url", "http://localhost:6333", "--backend", "edge"])
    assert usage.value.code == 2 and "--backend picks the engine of a local folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "q", "--hnsw-ef", "0"])
    assert "must be a whole number >= 1" in capsys.readouterr().err


def test_the_embedded_engine_indexes_sources_and_builds_its_index_while_indexing(
    tmp_path: Path, tiny_embeddings, monkeypatch, count_calls
) -> None:
    from search_r3.store_backends import tuning

    with QdrantStore(tiny_embeddings, "c", path=tmp_path / "db") as store:
        schema = store.client.get_collection("c").payload_schema
        assert schema["metadata.source"].data_type == models.PayloadSchemaType.KEYWORD
        builds = count_calls(store.client, "optimize")
        monkeypatch.setattr(
            tuning, "OPTIMIZE_THRESHOLD", 4
        )  # dense vectors waiting (sparse: indexed at once)
        fill(store, ["wing", "heat", "shock"])  # 3 wait: below the threshold
        assert builds == [] and store.client.unindexed_count("c") == 3
        names = list(DOCS)
        store.index([DOCS[n] for n in names], ids=names, metadatas=[METAS[n] for n in names])
        assert len(builds) == 1 and store.client.unindexed_count("c") == 0
        assert store.search(QUERY, k=1, reasoning=False, filter={"source": "c.md"}).hits[0].id in {
            "paris",
            "flutter",
        }
