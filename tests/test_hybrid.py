"""Hybrid (dense + BM25) search in QdrantStore (qdrant-client's local mode and the embedded engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _corpora import DOCS, QUERY, TOPICS, rrf
from qdrant_client import QdrantClient, models

from search_r3 import ReasoningEmbeddings
from search_r3.errors import InvalidInputError
from search_r3.sparse import Bm25Settings
from search_r3.store import (
    DenseOnlyCollectionError,
    HybridSettings,
    QdrantStore,
    SearchResult,
)

METAS = {name: {"topic": topic} for name, topic in TOPICS.items()}


def fill(store: QdrantStore) -> None:
    store.add_documents(list(DOCS.values()), ids=list(DOCS), metadatas=[METAS[d] for d in DOCS])


@pytest.fixture(params=["memory", "edge"])
def store(request, tiny_embeddings, tmp_path: Path):
    """The same collection in qdrant-client's ``:memory:`` and in the embedded engine."""
    path = ":memory:" if request.param == "memory" else tmp_path / "db"
    with QdrantStore(tiny_embeddings, "hybrid", path=path) as s:
        fill(s)
        yield s


def dbsf(lists: list[list[float]], ids: list[list[str]]) -> dict[str, float]:
    """Distribution-based score fusion: each list scaled by mean +- 3 sample std, then summed."""
    import statistics

    scores: dict[str, float] = {}
    for values, names in zip(lists, ids, strict=True):
        mean, std = statistics.mean(values), statistics.stdev(values)
        low, high = mean - 3 * std, mean + 3 * std
        for value, name in zip(values, names, strict=True):
            scores[name] = scores.get(name, 0.0) + (value - low) / (high - low)
    return scores


def ranked(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: -scores[d])


def test_hybrid_dbsf_equals_a_fusion_of_the_two_single_mode_rankings(store) -> None:
    n = len(DOCS)
    dense = store.search(QUERY, k=n, reasoning=False, mode="dense").hits
    sparse = store.search(QUERY, k=n, reasoning=False, mode="sparse").hits
    hybrid = store.search(QUERY, k=n, reasoning=False, mode="hybrid", fusion="dbsf")
    expected = dbsf(
        [[h.score for h in dense], [h.score for h in sparse]], [[h.id for h in dense], [h.id for h in sparse]]
    )
    assert {h.id: h.score for h in hybrid.hits} == pytest.approx(expected, rel=1e-5)
    assert [h.id for h in hybrid.hits] == ranked(expected)


def test_sparse_mode_is_bm25_and_needs_no_model_call(store, count_calls) -> None:
    calls = count_calls(store.embeddings, "encode_queries")
    hits = store.search("wing flutter", k=3, mode="sparse", reasoning=True).hits
    # the tiny model's reasoning is empty text, but the model still had to run to know that
    assert len(calls) == 1
    hits_plain = store.search("wing flutter", k=3, mode="sparse", reasoning=False).hits
    assert len(calls) == 1  # no reasoning, no expansion: BM25 alone
    assert [h.id for h in hits_plain] == [h.id for h in hits] and hits[0].id == "flutter"
    assert {h.id for h in hits} == {"flutter", "wing"}
    assert store.search("the of and", k=3, mode="sparse", reasoning=False).hits == []


def test_filters_apply_to_both_sides(store) -> None:
    n = len(DOCS)
    for fusion in ("rrf", "dbsf"):
        hits = store.search(QUERY, k=n, reasoning=False, filter={"topic": "aero"}, fusion=fusion).hits
        assert {h.id for h in hits} == {"wing", "shock", "flutter"}
    # "flutter" is the best BM25 match; filtered out, it must not come back through the sparse side
    hits = store.search(QUERY, k=n, reasoning=False, filter={"topic": ["heat", "nature"]}).hits
    assert {h.id for h in hits} == {"heat", "bird"}
    native = models.Filter(
        must_not=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="aero"))]
    )
    assert {h.id for h in store.search(QUERY, k=n, reasoning=False, mode="sparse", filter=native).hits} <= {
        "heat",
        "bird",
        "paris",
    }


def test_reasoning_expands_the_sparse_query_once(talkative_llama_dir: Path, count_calls) -> None:
    """The talkative model's reasoning starts with "Paris": only the expansion can match that document."""
    # one token of reasoning: " Paris" (longer, the random model glues more letters to it)
    embeddings = ReasoningEmbeddings.from_pretrained(
        talkative_llama_dir, device="cpu", max_reasoning_tokens=1
    )
    with QdrantStore(embeddings, "talk", path=":memory:") as store:
        fill(store)
        calls = count_calls(embeddings, "encode_queries")
        query = "which capital has the Louvre?"
        result = store.search(query, k=len(DOCS), mode="sparse", reasoning=True)
        assert len(calls) == 1 and isinstance(result, SearchResult)
        assert result.reasoning.strip() == "Paris" and result.forced
        assert result.hits[0].id == "paris"
        plain = store.search(
            query, k=len(DOCS), mode="sparse", reasoning=True, settings=HybridSettings(expand=False)
        )
        assert "paris" in {h.id for h in plain.hits}  # "capital" is in the query too
        assert result.hits[0].score > plain.hits[0].score  # expansion adds the reasoning's tokens

        calls.clear()
        rrf_1_1 = HybridSettings(fusion="rrf", dense_weight=1.0, sparse_weight=1.0)
        hybrid = store.search(query, k=len(DOCS), mode="hybrid", reasoning=True, settings=rrf_1_1)
        assert len(calls) == 1  # one reasoning serves both sides
        assert hybrid.reasoning == result.reasoning and hybrid.forced == result.forced
        # the same fusion, recomputed from the single-mode rankings with the same query encoding
        vector = embeddings.encode_queries([query], reasoning=True).embeddings[0]  # greedy: the same
        dense = store.search_by_vector(vector, k=len(DOCS))
        expanded = store.sparse_query(query, result.reasoning, rrf_1_1)
        sparse = store.search_by_vectors(None, expanded, k=len(DOCS), mode="sparse")
        expected = rrf([[h.id for h in dense], [h.id for h in sparse]], [1.0, 1.0], 61)
        assert {h.id: h.score for h in hybrid.hits} == pytest.approx(expected, rel=1e-6)


def test_old_format_collection_keeps_working_in_dense_mode(tiny_embeddings) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(  # what an earlier search-r3 made: one unnamed dense vector
        "old", vectors_config=models.VectorParams(size=64, distance=models.Distance.COSINE)
    )
    with QdrantStore(tiny_embeddings, "old", client=client) as store:
        assert not store.hybrid
        fill(store)
        hits = store.search(QUERY, k=3, reasoning=False)
        assert len(hits) == 3 and hits.mode == "dense"
        for mode in ("hybrid", "sparse"):
            with pytest.raises(
                DenseOnlyCollectionError,
                match=r"(?s)mode='dense'.*search-r3 index PATH --collection old-hybrid",
            ):
                store.search(QUERY, mode=mode, reasoning=False)
        store.delete(["wing"])
        assert store.count() == len(DOCS) - 1
    params = client.get_collection("old").config.params
    assert isinstance(params.vectors, models.VectorParams) and not params.sparse_vectors  # left as it was
    with pytest.raises(DenseOnlyCollectionError, match="hybrid=True"):
        QdrantStore(tiny_embeddings, "old", client=client, hybrid=True)
    with QdrantStore(tiny_embeddings, "dense-only", client=client, hybrid=False) as store:
        assert not store.hybrid
        assert isinstance(client.get_collection("dense-only").config.params.vectors, models.VectorParams)


def test_hybrid_collection_layout_settings_and_reopening(tiny_embeddings, tmp_path: Path) -> None:
    settings = Bm25Settings(avg_len=12.0)
    with QdrantStore(tiny_embeddings, "h", path=tmp_path / "db", sparse_settings=settings) as store:
        fill(store)
        params = store.client.get_collection("h").config.params
        assert params.vectors["dense"].size == 64
        assert params.sparse_vectors["bm25"].modifier == models.Modifier.IDF
        point = store.client.retrieve("h", [store_point("wing")], with_vectors=True)[0]
        assert (
            point.vector["bm25"].indices == store.sparse_encoder.encode_documents([DOCS["wing"]])[0].indices
        )
    with QdrantStore(tiny_embeddings, "h", path=tmp_path / "db", hybrid=False) as store:
        assert store.hybrid and store.sparse_settings == settings  # recorded with the collection
        assert store.count() == len(DOCS)
        fill(store)  # resumable: nothing stored twice
        assert store.count() == len(DOCS)
        store.delete(["flutter"])  # removes the point: both vectors
        assert store.count() == len(DOCS) - 1
        assert "flutter" not in {
            h.id for h in store.search("wing flutter", k=6, mode="sparse", reasoning=False)
        }
        assert "flutter" not in {h.id for h in store.search("wing flutter", k=6, reasoning=False)}


def store_point(doc_id: str) -> str:
    from search_r3.store import point_id

    return point_id(doc_id)


def test_bad_mode_and_fusion_are_clear_errors(store) -> None:
    with pytest.raises(InvalidInputError, match="mode must be one of hybrid, dense, sparse"):
        store.search(QUERY, mode="bm25", reasoning=False)
    with pytest.raises(InvalidInputError, match="fusion must be one of rrf, dbsf"):
        store.search(QUERY, fusion="max", reasoning=False)
    with pytest.raises(InvalidInputError, match="negative"):
        HybridSettings(dense_weight=-1)
    with pytest.raises(InvalidInputError, match="sparse query vector"):
        store.search_by_vectors([0.0] * 64, None, mode="hybrid")
