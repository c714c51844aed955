"""EdgeClient answers qdrant-client's calls as qdrant-client does: the same calls on both, compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from search_r3.store_backends import StoreClient
from search_r3.store_backends.edge import EdgeClient
from search_r3.store_backends.errors import StoreError, StoreLockedError

N = 60


def points(named: bool) -> list[models.PointStruct]:
    rng = np.random.default_rng(0)
    made = []
    for i in range(N):
        dense = rng.standard_normal(8).tolist()
        vector = {
            "dense": dense,
            "bm25": models.SparseVector(indices=[i % 5, 7], values=[1.0 + i / 64, 0.5 + (i % 7) / 32]),
        }
        payload = {"n": i, "kind": ["a", "b", "c"][i % 3], "flag": i % 2 == 0, "tags": ["x"] if i % 4 else []}
        made.append(models.PointStruct(id=i, vector=vector if named else dense, payload=payload))
    return made


@pytest.fixture(params=[True, False], ids=["named", "unnamed"])
def pair(request, tmp_path: Path):
    named = request.param
    clients = [QdrantClient(":memory:"), EdgeClient(tmp_path / "edge")]
    for client in clients:
        if named:
            client.create_collection(
                "c",
                vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
                sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
                metadata={"search_r3": {"model": "m"}},
            )
        else:
            client.create_collection("c", vectors_config=models.VectorParams(size=8, distance="Cosine"))
        client.upsert("c", points(named))
    yield named, clients
    for client in clients:
        client.close()


FILTERS = [
    models.Filter(must=[models.FieldCondition(key="kind", match=models.MatchValue(value="a"))]),
    models.Filter(must_not=[models.FieldCondition(key="kind", match=models.MatchAny(any=["a", "b"]))]),
    models.Filter(
        should=[
            models.FieldCondition(key="n", range=models.Range(gte=10, lt=14)),
            models.HasIdCondition(has_id=[50]),
        ]
    ),
    models.Filter(must=[models.FieldCondition(key="flag", match=models.MatchValue(value=True))]),
    models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="tags"))]),
    models.Filter(must=[models.FieldCondition(key="kind", match=models.MatchExcept(**{"except": ["c"]}))]),
]


def ids(found) -> list:
    return sorted(p.id for p in found)


def test_both_satisfy_the_protocol(pair) -> None:
    _, clients = pair
    assert all(isinstance(c, StoreClient) for c in clients)


@pytest.mark.parametrize("flt", FILTERS, ids=range(len(FILTERS)))
def test_filters_count_scroll_and_query_agree(pair, flt) -> None:
    named, (reference, edge) = pair
    assert edge.count("c", count_filter=flt).count == reference.count("c", count_filter=flt).count > 0
    assert ids(edge.scroll("c", scroll_filter=flt, limit=100)[0]) == ids(
        reference.scroll("c", scroll_filter=flt, limit=100)[0]
    )
    query = [0.5] * 8
    using = "dense" if named else None
    want = reference.query_points("c", query=query, using=using, query_filter=flt, limit=5).points
    got = edge.query_points("c", query=query, using=using, query_filter=flt, limit=5).points
    assert [p.id for p in got] == [p.id for p in want]
    assert [p.score for p in got] == pytest.approx([p.score for p in want], abs=1e-5)


def test_paging_retrieve_delete_and_layout(pair) -> None:
    named, (reference, edge) = pair
    seen, offset = [], None
    while True:
        page, offset = edge.scroll("c", limit=7, offset=offset, with_payload=False)
        seen += [p.id for p in page]
        if offset is None:
            break
    assert seen == list(range(N))
    [got] = edge.retrieve("c", [3], with_payload=True, with_vectors=True)
    [want] = reference.retrieve("c", [3], with_payload=True, with_vectors=True)
    assert got.payload == want.payload
    if named:
        assert got.vector["bm25"] == want.vector["bm25"]
        assert got.vector["dense"] == pytest.approx(want.vector["dense"], abs=1e-6)
        info = edge.get_collection("c")
        assert info.config.params.vectors["dense"].size == 8 and info.config.metadata == {
            "search_r3": {"model": "m"}
        }
        assert info.config.params.sparse_vectors["bm25"].modifier == models.Modifier.IDF
    else:
        assert got.vector == pytest.approx(want.vector, abs=1e-6)
        assert edge.get_collection("c").config.params.vectors.size == 8
    for client in (reference, edge):
        client.delete("c", models.PointIdsList(points=[0, 1, 999]))
        client.delete("c", models.FilterSelector(filter=FILTERS[0]))
    assert edge.count("c").count == reference.count("c").count == N - 2 - (N // 3 - 1)


def test_hybrid_fusion_agrees(pair) -> None:
    named, (reference, edge) = pair
    if not named:
        pytest.skip("fusion needs the named dense and sparse vectors")
    sparse = models.SparseVector(indices=[1, 7], values=[1.0, 1.0])
    prefetch = [
        models.Prefetch(query=[0.3] * 8, using="dense", limit=20),
        models.Prefetch(query=sparse, using="bm25", limit=10),  # within the 12 holding token 1: no ties
    ]
    for fusion in (
        models.RrfQuery(rrf=models.Rrf(k=61, weights=[2.0, 1.0])),
        models.FusionQuery(fusion=models.Fusion.DBSF),
    ):
        # every fused point (at most 20 + 10): no cut between points that tie
        want = reference.query_points("c", prefetch=prefetch, query=fusion, limit=30).points
        got = edge.query_points("c", prefetch=prefetch, query=fusion, limit=30).points
        assert {p.id: p.score for p in got} == pytest.approx({p.id: p.score for p in want}, rel=1e-4)


def test_collections_lock_and_errors(tmp_path: Path) -> None:
    client = EdgeClient(tmp_path / "s")
    try:
        assert client.get_collections().collections == []
        client.create_collection("one", vectors_config=models.VectorParams(size=2, distance="Dot"))
        assert [c.name for c in client.get_collections().collections] == ["one"]
        with pytest.raises(StoreError, match="already exists"):
            client.create_collection("one", vectors_config=models.VectorParams(size=2, distance="Dot"))
        with pytest.raises(StoreError, match="cannot be stored in a folder"):
            client.create_collection("../up", vectors_config=models.VectorParams(size=2, distance="Dot"))
        with pytest.raises(StoreError, match="unsigned integers or UUIDs"):
            client.retrieve("one", ["not-a-uuid"])
        with pytest.raises(StoreLockedError, match="already open"):
            EdgeClient(tmp_path / "s")
        assert client.delete_collection("one") and not client.collection_exists("one")
    finally:
        client.close()
    EdgeClient(tmp_path / "s").close()  # the lock went with close()
