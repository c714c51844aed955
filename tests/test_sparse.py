"""The BM25 sparse encoder: term weights against a hand computation, query expansion, Qdrant's IDF."""

from __future__ import annotations

import math

import pytest
from qdrant_client import QdrantClient, models

from search_r3.errors import InvalidInputError
from search_r3.sparse import Bm25Settings, SparseEncoder

# After lower-casing, English stop words and Snowball stemming:
#   doc 0 -> wing, lift, wing, angl, attack, lift, wing    (7 tokens; wing x3, lift x2)
#   doc 1 -> heat, conduct, slab                           (3 tokens)
#   doc 2 -> wing, flutter                                 (2 tokens)
DOCS = [
    "The wings lift; the wing angle of attack lifts wings.",
    "Heat conduction in slabs.",
    "Wing flutter.",
]
K, B, AVG = 1.2, 0.75, 4.0


def bm25_tf(tf: int, doc_len: int, k: float = K, b: float = B, avg: float = AVG) -> float:
    return tf * (k + 1) / (tf + k * (1 - b + b * doc_len / avg))


@pytest.fixture(scope="module")
def encoder() -> SparseEncoder:
    return SparseEncoder(Bm25Settings(k=K, b=B, avg_len=AVG))


def test_document_weights_match_a_hand_computed_bm25(encoder: SparseEncoder) -> None:
    vectors = encoder.encode_documents(DOCS)
    wing = encoder.tokens("wing")[0]
    assert encoder.tokens("wings") == encoder.tokens("Wing") == [wing]  # stemmed and lower-cased
    assert encoder.tokens("the of and") == []  # stop words
    doc0 = vectors[0].to_dict()
    assert len(doc0) == 4  # wing, lift, angl, attack
    assert doc0[wing] == pytest.approx(bm25_tf(3, 7), rel=1e-5)
    assert doc0[encoder.tokens("lift")[0]] == pytest.approx(bm25_tf(2, 7), rel=1e-5)
    assert doc0[encoder.tokens("attack")[0]] == pytest.approx(bm25_tf(1, 7), rel=1e-5)
    assert vectors[2].to_dict()[wing] == pytest.approx(bm25_tf(1, 2), rel=1e-5)
    assert vectors[1].to_dict()[encoder.tokens("slab")[0]] == pytest.approx(bm25_tf(1, 3), rel=1e-5)
    assert wing not in vectors[1].to_dict()
    assert all(v.indices == sorted(v.indices) for v in vectors)


def test_qdrant_idf_times_term_weight_is_the_bm25_score(encoder: SparseEncoder) -> None:
    """With Modifier.IDF, Qdrant's score is the full BM25: idf(t) x the client-side term weight."""
    client = QdrantClient(":memory:")
    client.create_collection(
        "c",
        vectors_config={},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upsert(
        "c",
        [
            models.PointStruct(id=i, vector={"bm25": v.to_qdrant()})
            for i, v in enumerate(encoder.encode_documents(DOCS))
        ],
    )
    query = encoder.encode_query("wings")
    found = client.query_points("c", query=query.to_qdrant(), using="bm25", limit=3).points
    n, df = 3, 2  # "wing" is in two of the three documents
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    assert [p.id for p in found] == [0, 2]  # wing x3 in a long document beats wing x1 in a short one
    assert found[0].score == pytest.approx(idf * bm25_tf(3, 7), rel=1e-4)
    assert found[1].score == pytest.approx(idf * bm25_tf(1, 2), rel=1e-4)


def test_query_expansion_weights_the_reasoning_below_the_query(encoder: SparseEncoder) -> None:
    wing, lift, stall = (encoder.tokens(w)[0] for w in ("wing", "lift", "stall"))
    plain = encoder.encode_query("wing lift").to_dict()
    assert plain == {wing: 1.0, lift: 1.0}
    expanded = encoder.encode_query("wing lift", "The stall of a wing.", reasoning_weight=0.25).to_dict()
    assert expanded == {wing: 1.25, lift: 1.0, stall: 0.25}
    assert encoder.encode_query("wing lift", "   ").to_dict() == plain
    weighted = encoder.encode_query("wing", "stall", query_weight=2.0, reasoning_weight=0.0).to_dict()
    assert weighted == {wing: 2.0}
    with pytest.raises(InvalidInputError, match="negative"):
        encoder.encode_query("wing", reasoning_weight=-1)


def test_token_ids_are_stateless_and_match_qdrant_edge_bm25() -> None:
    """Two encoders (two processes, a server) agree: ids are hashes, not a vocabulary."""
    from qdrant_edge import Bm25, Bm25Config

    ours = SparseEncoder().encode_documents(["Boundary layer transition on a flat plate."])[0]
    theirs = Bm25(Bm25Config()).embed_document("Boundary layer transition on a flat plate.")
    assert ours.to_dict() == pytest.approx(dict(zip(theirs.indices, theirs.values, strict=True)))
    assert SparseEncoder().tokens("plate") == SparseEncoder().tokens("plates")


def test_settings_round_trip_and_bad_input() -> None:
    settings = Bm25Settings(k=1.5, b=0.5, avg_len=100.0, language="german")
    recorded = settings.to_dict()
    assert recorded["encoder"] == "qdrant-bm25"
    assert Bm25Settings.from_dict(recorded) == settings
    with pytest.raises(InvalidInputError, match="language"):
        SparseEncoder(Bm25Settings(language="Klingon"))
    with pytest.raises(InvalidInputError, match="wrap a single text"):
        SparseEncoder().encode_documents("one text")
