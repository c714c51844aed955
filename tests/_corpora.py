"""The small corpus the store tests share, and Qdrant's weighted RRF computed here to check against.

Imported by the test modules next to it (``from _corpora import DOCS, QUERY``): pytest puts this
folder on ``sys.path`` for them.
"""

from __future__ import annotations

#: Six short documents: three about aerodynamics, one each on heat, birds and geography.
DOCS = {
    "wing": "The lift of a wing depends on its angle of attack.",
    "heat": "Heat conduction in composite slabs at high temperature.",
    "shock": "Shock waves form ahead of a blunt body in supersonic flow.",
    "bird": "Migrating birds fly in formation to save energy.",
    "paris": "Paris is the capital of France.",
    "flutter": "Wing flutter at high speed: lift and torsion couple.",
}
#: Each document's topic (the tests' metadata carry it as ``topic``).
TOPICS = {
    "wing": "aero",
    "heat": "heat",
    "shock": "aero",
    "bird": "nature",
    "paris": "geo",
    "flutter": "aero",
}
#: A query that shares words with some documents (BM25 returns only those).
QUERY = "wing lift at high speed"


def rrf(lists: list[list[str]], weights: list[float], k: int) -> dict[str, float]:
    """Qdrant's weighted RRF, computed here: weight / (rank + weight * (k - 1)), rank from 1."""
    scores: dict[str, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, doc in enumerate(ranked, 1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (rank / weight + k - 1)
    return scores
