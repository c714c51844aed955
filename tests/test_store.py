"""QdrantStore on qdrant-client's local mode (and a real server when QDRANT_URL is set)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

import search_r3.store as store_module
from search_r3.errors import InvalidInputError
from search_r3.store import (
    CollectionMismatchError,
    QdrantStore,
    StoreError,
    StoreLockedError,
    StoreOptionsError,
    default_store_path,
    open_client,
    point_id,
)

DOCS = [
    "The lift of a wing depends on its angle of attack.",
    "Heat conduction in composite slabs.",
    "Shock waves form ahead of a blunt body.",
    "Migrating birds fly in formation.",
]
METAS = [
    {"topic": "aero", "year": 1958},
    {"topic": "heat", "year": 1960},
    {"topic": "aero", "year": 1961},
    {},
]


@pytest.fixture
def store(tiny_embeddings):
    with QdrantStore(tiny_embeddings, "test", path=":memory:") as s:
        yield s


def test_add_and_search_returns_hits_with_payload(store: QdrantStore, tiny_embeddings) -> None:
    ids = store.add_documents(DOCS, ids=["wing", "heat", "shock", "bird"], metadatas=METAS)
    assert ids == ["wing", "heat", "shock", "bird"] and store.count() == 4
    result = store.search("lift of wings", k=3, reasoning=True, max_reasoning_tokens=3)
    assert len(result.hits) == 3 and isinstance(result.reasoning, str) and isinstance(result.forced, bool)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    by_id = {h.id: h for h in result.hits}
    for hit in by_id.values():
        i = ids.index(hit.id)
        assert hit.text == DOCS[i] and hit.metadata == METAS[i]
    # the store's cosine is the model's own: compare with a direct computation
    query = tiny_embeddings.encode_queries(["lift of wings"], reasoning=False).embeddings[0]
    docs = tiny_embeddings.encode_documents(DOCS)
    direct = store.search("lift of wings", k=4, reasoning=False, mode="dense")
    expected = {ids[j]: float(docs[j] @ query) for j in range(4)}
    for hit in direct.hits:
        assert hit.score == pytest.approx(expected[hit.id], abs=1e-4)
    assert direct.reasoning == "" and direct.forced is False


def test_search_by_vector_finds_the_document_itself(store: QdrantStore, tiny_embeddings) -> None:
    store.add_documents(DOCS, ids=["a", "b", "c", "d"])
    vector = tiny_embeddings.encode_documents([DOCS[2]])[0]
    hits = store.search_by_vector(vector, k=1)
    assert hits[0].id == "c" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InvalidInputError, match="needs 64"):
        store.search_by_vector(np.zeros(3), k=1)


def test_re_adding_stores_nothing_twice_and_re_embeds_only_edits(store: QdrantStore, monkeypatch) -> None:
    store.add_documents(DOCS, ids=["a", "b", "c", "d"])
    embedded: list[str] = []
    encode = store.embeddings.encode_documents
    monkeypatch.setattr(
        store.embeddings, "encode_documents", lambda t, **kw: embedded.extend(t) or encode(t, **kw)
    )
    store.add_documents(DOCS, ids=["a", "b", "c", "d"])  # unchanged: nothing embedded
    assert embedded == [] and store.count() == 4
    store.add_documents(["changed text", DOCS[1]], ids=["a", "b"])  # an edit is re-embedded, in place
    assert embedded == ["changed text"] and store.count() == 4 and store.get(["a"])[0].text == "changed text"
    store.add_documents([DOCS[1]], ids=["b"], metadatas=[{"topic": "new"}])  # metadata edits count too
    assert embedded[-1] == DOCS[1] and store.get(["b"])[0].metadata == {"topic": "new"}
    store.add_documents([DOCS[2]], ids=["c"], skip_existing=False)  # forced
    assert embedded[-1] == DOCS[2] and store.count() == 4


def test_ids_from_content_are_deterministic(store: QdrantStore) -> None:
    first = store.add_documents(DOCS + [DOCS[0]])  # a duplicate text maps to the same id
    assert first[0] == first[-1] and store.count() == 4
    assert store.add_documents(DOCS) == first[:4] and store.count() == 4
    assert point_id("x") == point_id("x") != point_id("y")
    uuid.UUID(point_id("x"))  # a valid Qdrant point id


def test_metadata_filters(store: QdrantStore) -> None:
    store.add_documents(DOCS, ids=["wing", "heat", "shock", "bird"], metadatas=METAS)
    hits = store.search("anything", k=4, filter={"topic": "aero"}, reasoning=False).hits
    assert {h.id for h in hits} == {"wing", "shock"}
    hits = store.search("anything", k=4, filter={"year": [1958, 1960]}, reasoning=False).hits
    assert {h.id for h in hits} == {"wing", "heat"}
    native = models.Filter(must=[models.FieldCondition(key="metadata.year", range=models.Range(gte=1960))])
    assert {h.id for h in store.search("x", k=4, filter=native, reasoning=False).hits} == {"heat", "shock"}
    with pytest.raises(InvalidInputError, match="filter value"):
        store.search("x", filter={"year": 1.5}, reasoning=False)


def test_filters_match_the_stored_type_and_odd_keys(store: QdrantStore) -> None:
    metas = [
        {"code": "123", "zip": "02139", "a.b": "dot", "": "empty", "flag": True},
        {"code": 123, "zip": 2139, "flag": False},
        {"code": "x", "topic": "art"},
        {"code": 1, "topic": "1"},
    ]
    store.add_documents(DOCS, ids=["s", "i", "x", "one"], metadatas=metas)

    def found(filter) -> set[str]:
        return {h.id for h in store.search_by_vector(np.ones(64), k=4, filter=filter)}

    assert found({"code": "123"}) == {"s"}  # a string matches the string only
    assert found({"code": 123}) == {"i"}
    assert found({"code": ["123", 123]}) == {"s", "i"}  # mixed types in one list: any of them
    assert found({"zip": "02139"}) == {"s"}
    assert found({"topic": ["art", "1", 1]}) == {"x", "one"}
    assert found({"a.b": "dot"}) == {"s"} and found({"": "empty"}) == {"s"}  # literal keys, not paths
    assert found({"flag": True}) == {"s"} and found({"flag": [True, False]}) == {"s", "i"}
    assert found({"code": [True]}) == set()  # a bool never matches the integer 1
    with pytest.raises(InvalidInputError, match="empty list"):
        found({"code": []})


def test_delete_by_ids_and_filter(store: QdrantStore) -> None:
    store.add_documents(DOCS, ids=["wing", "heat", "shock", "bird"], metadatas=METAS)
    assert store.delete([]) == 0 and store.count() == 4  # no-op, no error
    assert store.delete(["wing", "unknown"]) == 1 and store.count() == 3
    assert store.delete(filter={"topic": "aero"}) == 1 and {h.id for h in store.get(["shock", "heat"])} == {
        "heat"
    }
    assert store.delete(filter={"topic": "none"}) == 0 and store.count() == 2
    with pytest.raises(InvalidInputError, match="ids or a filter"):
        store.delete()
    with pytest.raises(InvalidInputError, match="wrap a single id"):
        store.delete("heat")
    assert store.delete(filter={}) == 2 and store.count() == 0  # an empty filter matches everything


def test_add_vectors_rejects_duplicate_ids(store: QdrantStore) -> None:
    vectors = np.eye(2, 64, dtype=np.float32)
    with pytest.raises(InvalidInputError, match="'x' appears twice"):
        store.add_vectors(vectors, ["a", "b"], ["x", "x"])
    assert store.count() == 0
    assert store.add_vectors(vectors, ["a", "b"], ["x", "y"]) == ["x", "y"] and store.count() == 2


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_batch_size_must_be_positive(store: QdrantStore, batch_size) -> None:
    with pytest.raises(InvalidInputError, match="batch size must be a positive integer"):
        store.add_documents(DOCS, batch_size=batch_size)
    with pytest.raises(InvalidInputError, match="batch size must be a positive integer"):
        store.index(DOCS, batch_size=batch_size)
    assert store.count() == 0


def test_bad_input_is_rejected(store: QdrantStore) -> None:
    with pytest.raises(InvalidInputError, match="wrap a single text"):
        store.add_documents("one text")
    with pytest.raises(InvalidInputError, match="index 1 is empty"):
        store.add_documents(["ok", " "])
    with pytest.raises(InvalidInputError, match="appears twice"):
        store.add_documents(["a", "b"], ids=["x", "x"])
    with pytest.raises(InvalidInputError, match="one id per text"):
        store.add_documents(["a", "b"], ids=["x"])
    with pytest.raises(InvalidInputError, match="non-empty"):
        store.search("  ")


def test_collection_is_created_from_the_model_dimension(tiny_embeddings) -> None:
    client = QdrantClient(":memory:")
    with QdrantStore(tiny_embeddings, "fresh", client=client) as s:
        params = client.get_collection("fresh").config.params.vectors["dense"]  # hybrid by default
        assert (params.size, params.distance) == (64, models.Distance.COSINE)
        assert s.count() == 0
    assert client.collection_exists("fresh")  # a client passed in is not closed by the store


@pytest.mark.parametrize(
    ("size", "distance", "message"),
    [(32, models.Distance.COSINE, "size 32 with Cosine.*size 64"), (64, models.Distance.DOT, "Dot.*Cosine")],
)
def test_mismatched_collection_is_a_clear_error(tiny_embeddings, size, distance, message) -> None:
    client = QdrantClient(":memory:")
    client.create_collection("old", vectors_config=models.VectorParams(size=size, distance=distance))
    with pytest.raises(CollectionMismatchError, match=message):
        QdrantStore(tiny_embeddings, "old", client=client)


def test_local_folder_persists_and_reopens(tiny_embeddings, tmp_path: Path) -> None:
    with QdrantStore(tiny_embeddings, "p", path=tmp_path / "db") as s:
        s.add_documents(DOCS, ids=["a", "b", "c", "d"])
    with QdrantStore(tiny_embeddings, "p", path=tmp_path / "db") as s:  # the lock was released
        assert s.count() == 4 and s.get(["c"])[0].text == DOCS[2]


def test_second_client_in_this_process_gets_the_one_client_rule(tiny_embeddings, tmp_path: Path) -> None:
    with (
        QdrantStore(tiny_embeddings, "p", path=tmp_path / "db"),
        pytest.raises(StoreLockedError, match=r"(?s)one client per folder.*--url / QDRANT_URL"),
    ):
        QdrantStore(tiny_embeddings, "p", path=tmp_path / "db")


def test_second_process_gets_the_one_client_rule(tiny_embeddings, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from search_r3.store import StoreLockedError, open_client\n"
        "try:\n"
        "    open_client(sys.argv[1])\n"
        "except StoreLockedError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    with QdrantStore(tiny_embeddings, "p", path=tmp_path / "db"):
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "db")], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 3, done.stderr
    assert "already open in another process" in done.stdout and "Qdrant server" in done.stdout


def test_warns_above_local_mode_comfort(tiny_embeddings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "LOCAL_MODE_COMFORT_LIMIT", 3)
    with (
        QdrantStore(tiny_embeddings, "big", path=tmp_path / "db", backend="local") as s,
        pytest.warns(UserWarning, match=r"(?s)above the 3 that Qdrant's local mode.*store migrate.*server"),
    ):
        s.add_documents(DOCS)
    with pytest.warns(UserWarning, match="holds 4 points"):  # and again when reopened
        QdrantStore(tiny_embeddings, "big", path=tmp_path / "db").close()
    with warnings.catch_warnings():  # the embedded engine has no such limit
        warnings.simplefilter("error")
        with QdrantStore(tiny_embeddings, "big", path=tmp_path / "edge") as s:
            s.add_documents(DOCS)
            assert s.backend == "edge"


def test_no_warning_below_the_limit(tiny_embeddings) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with QdrantStore(tiny_embeddings, "small", path=":memory:") as s:
            s.add_documents(DOCS)


def test_default_location(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEARCH_R3_STORE", str(tmp_path / "here"))
    assert default_store_path() == tmp_path / "here"
    monkeypatch.delenv("QDRANT_URL", raising=False)
    client = open_client()
    try:
        assert client.init_options["path"] == str(tmp_path / "here")
    finally:
        client.close()
    with pytest.raises(StoreOptionsError, match="not both: drop --path or --url"):
        open_client(path=tmp_path, url="http://localhost:6333")
    with pytest.raises(StoreOptionsError, match="store path is empty"):
        open_client(path="")


def test_unreachable_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match=rf"Could not reach the Qdrant server at http://127.0.0.1:{port}"):
        open_client(url=f"http://127.0.0.1:{port}")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_folder_is_a_clear_error(tiny_embeddings, tmp_path: Path) -> None:
    with QdrantStore(tiny_embeddings, "ro", path=tmp_path / "db") as s:
        s.add_documents(DOCS[:1])
    for folder in [tmp_path / "db", *(tmp_path / "db").rglob("*")]:
        folder.chmod(0o555 if folder.is_dir() else 0o444)
    try:
        with (
            pytest.raises(StoreError, match="Make it writable, or pick another folder"),
            QdrantStore(tiny_embeddings, "ro", path=tmp_path / "db") as s,
        ):
            s.add_documents(DOCS[1:2])
    finally:
        for folder in [tmp_path / "db", *(tmp_path / "db").rglob("*")]:
            folder.chmod(0o755 if folder.is_dir() else 0o644)


@pytest.mark.server
@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server: set QDRANT_URL")
def test_server_mode_same_api(tiny_embeddings) -> None:
    name = f"search_r3_test_{uuid.uuid4().hex[:8]}"
    with QdrantStore(tiny_embeddings, name) as s:  # url and api key from QDRANT_URL / QDRANT_API_KEY
        try:
            assert not s.local
            s.add_documents(DOCS, ids=["wing", "heat", "shock", "bird"], metadatas=METAS)
            s.add_documents(DOCS, ids=["wing", "heat", "shock", "bird"], metadatas=METAS)
            assert s.count() == 4
            s.client.create_payload_index(name, "metadata.topic", models.PayloadSchemaType.KEYWORD)
            hits = s.search("wing", k=4, filter={"topic": "aero"}, reasoning=False).hits
            assert {h.id for h in hits} == {"wing", "shock"}
        finally:
            s.client.delete_collection(name)


def test_collection_records_its_model(tiny_embeddings, tiny_llama_dir: Path) -> None:
    from search_r3.store import collection_model

    client = QdrantClient(":memory:")
    QdrantStore(tiny_embeddings, "rec", client=client)
    assert collection_model(client, "rec") == str(Path(tiny_llama_dir).resolve())
    assert collection_model(client, "absent") is None


def test_a_huge_text_is_cut_by_characters_before_embedding(store: QdrantStore, tiny_embeddings) -> None:
    words = ["wing", "lift", "heat", "shock", "tide", "bread", "stale", "moon", "road", "index"]
    huge = " ".join(words[i % len(words)] for i in range(40_000))  # far past max_length tokens
    cut = store._embeddable([huge])[0]
    assert len(cut) == tiny_embeddings.max_length * store_module.MAX_CHARS_PER_TOKEN < len(huge)
    store.add_documents([huge], ids=["huge"])
    hit = store.get(["huge"])[0]
    assert hit.text == huge  # the stored text stays whole
    whole = tiny_embeddings.encode_documents([huge])[0]  # tokenises all of it, then truncates
    assert store.search_by_vector(whole, k=1)[0].score == pytest.approx(1.0, abs=1e-4)
