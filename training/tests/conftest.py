"""Fixtures of the SFT tests: small JSON lines files written at test time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TOPICS = {
    "volcano": ("lava flows from an erupting volcano", "magma chambers under volcanic islands"),
    "violin": ("tuning the strings of a violin", "bow technique for string players"),
    "orbit": ("satellites in low earth orbit", "orbital mechanics of planets"),
    "bread": ("baking sourdough bread at home", "yeast and flour in a bakery"),
    "glacier": ("glaciers retreat as ice melts", "moraines left by ancient ice sheets"),
    "chess": ("opening moves in a chess game", "endgame strategy with a rook and king"),
    "tide": ("ocean tides follow the moon", "high tide and low tide at the harbour"),
    "bee": ("honey bees pollinate flowers", "a beehive with worker bees and a queen"),
}


def sft_rows() -> list[dict]:
    """One query per topic: its two texts are positives, other topics' texts hard negatives."""
    names = list(TOPICS)
    rows = []
    for i, name in enumerate(names):
        other = TOPICS[names[(i + 1) % len(names)]]
        rows.append(
            {"query": f"tell me about {name}", "pos": list(TOPICS[name]), "neg": [other[0], other[1]]}
        )
    rows[0]["reasoning"] = "The user asks about volcanoes: lava, magma, eruptions."
    return rows


@pytest.fixture(scope="session")
def sft_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid training file (8 queries, one with reasoning)."""
    path = tmp_path_factory.mktemp("sft-data") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows()))
    return path
