"""Fixtures of the stage-2 tests: a small BEIR collection and a tiny model that emits the token.

A random tiny model almost never samples ``<|embed_token|>`` (one token in ~49k). The
``emitting_model_dir`` copy adds a shared component to every input embedding, so the final hidden
state always points along it, and lifts the embed token's (tied) row along that component: the
token then comes out within a few sampled tokens, and both the emitted and the missing-token
paths get exercised.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TOPICS = {
    "wing": ["wing lift", "airfoil camber", "stall angle", "flap deflection", "wing span loading"],
    "heat": ["heat transfer", "boundary layer heating", "thermal conductivity", "surface temperature"],
    "shock": ["shock wave", "supersonic flow", "mach number", "oblique shock reflection"],
    "buckling": ["cylinder buckling", "shell stability", "axial compression", "elastic plates"],
}


def write_beir(root: Path, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, int]]):
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    with open(root / "corpus.jsonl", "w") as f:
        for doc_id, text in corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for doc_id, rel in docs.items():
                f.write(f"{qid}\t{doc_id}\t{rel}\n")
    return root


def synthetic_collection() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """32 short documents on four topics and 8 queries, two per topic, with graded judgements."""
    corpus, queries, qrels = {}, {}, {}
    for t, (topic, phrases) in enumerate(TOPICS.items()):
        for i in range(8):
            a, b = phrases[i % len(phrases)], phrases[(i + 1) % len(phrases)]
            corpus[f"{topic}-{i}"] = f"Measurements of {a} and {b} in experiment {i} on {topic} problems."
        for j in range(2):
            qid = f"q{t * 2 + j}"
            queries[qid] = f"what is known about {phrases[j]} and {phrases[j + 2]}?"
            qrels[qid] = {f"{topic}-{j}": 2, f"{topic}-{j + 2}": 1, f"{topic}-{j + 4}": 1}
    return corpus, queries, qrels


@pytest.fixture(scope="session")
def rl_collection_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder (32 docs, 8 judged queries) built at test time."""
    corpus, queries, qrels = synthetic_collection()
    return write_beir(tmp_path_factory.mktemp("rlcol") / "synthetic", corpus, queries, qrels)


def bias_towards_embed_token(model_dir: Path, out: Path, lift: float = 1.1, shared: float = 1.0) -> Path:
    """Copy a tiny search-r3 model so that it samples the embed token often."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    embed_id = tokenizer.convert_tokens_to_ids("<|embed_token|>")
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[:, 0] += shared  # every position carries this direction into the final hidden state
        weight[embed_id, 0] += lift  # ... which now favours the embed token (tied output row)
    shutil.copytree(model_dir, out)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def emitting_model_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny Llama search-r3 model that emits the embed token in most short rollouts."""
    return bias_towards_embed_token(tiny_llama_dir, tmp_path_factory.mktemp("emit") / "tiny-emit")
