"""The query cache: keys, LRU, SQLite persistence, and the hook in ``encode_queries``."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from search_r3 import InvalidInputError, ReasoningEmbeddings
from search_r3.query_cache import (
    CachedQuery,
    QueryCache,
    forget_fingerprint,
    model_fingerprint,
    query_key,
    sampling_key,
)


def _entry(seed: int, dim: int = 4) -> CachedQuery:
    return CachedQuery(
        np.random.default_rng(seed).random(dim, dtype=np.float32), f"r{seed}", seed % 2 == 0, seed
    )


def test_keys_separate_every_setting() -> None:
    base = dict(reasoning=True, max_reasoning_tokens=32, max_length=512, sampling=[])
    key = query_key("fp", "q", **base)
    assert key == query_key("fp", "q", **base)
    variants = [
        query_key("other", "q", **base),
        query_key("fp", "q ", **base),
        query_key("fp", "q", **{**base, "reasoning": False}),
        query_key("fp", "q", **{**base, "max_reasoning_tokens": 16}),
        query_key("fp", "q", **{**base, "max_length": 64}),
        query_key("fp", "q", **{**base, "sampling": sampling_key(True, 0.7, 1.0, 3)}),
    ]
    assert len({key, *variants}) == len(variants) + 1
    # without reasoning the budget does not matter
    off = {**base, "reasoning": False}
    assert query_key("fp", "q", **off) == query_key("fp", "q", **{**off, "max_reasoning_tokens": 8})


def test_sampling_without_seed_is_never_cached() -> None:
    assert sampling_key(True, 0.7, 0.9, None) is None
    assert query_key("fp", "q", reasoning=True, max_reasoning_tokens=8, max_length=64, sampling=None) is None
    cache = QueryCache()
    cache.put(None, _entry(1))
    assert len(cache) == 0 and cache.get(None) is None and cache.misses == 0


def test_lru_evicts_the_least_recently_used() -> None:
    cache = QueryCache(max_entries=2)
    cache.put("a", _entry(1))
    cache.put("b", _entry(2))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", _entry(3))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert (cache.hits, cache.misses) == (3, 1)


def test_stored_vectors_are_read_only() -> None:
    cache = QueryCache()
    stored = cache.put("a", _entry(1))
    with pytest.raises(ValueError):
        stored.vector[0] = 5.0
    assert cache.get("a").vector.dtype == np.float32


def test_sqlite_file_survives_a_restart_and_holds_no_pickle(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "queries.sqlite"
    entry = _entry(7, dim=16)
    with QueryCache(path=path) as cache:
        cache.put("k", entry)
    with QueryCache(path=path) as reopened:
        got = reopened.get("k")
        assert got is not None and reopened.hits == 1
        np.testing.assert_array_equal(got.vector, entry.vector)
        assert (got.reasoning, got.forced, got.generated_tokens) == ("r7", False, 7)
    row = sqlite3.connect(path).execute("SELECT vector FROM queries").fetchone()
    assert row[0] == entry.vector.astype("<f4").tobytes()  # raw float32 bytes


def test_sqlite_file_is_bounded(tmp_path: Path) -> None:
    with QueryCache(max_entries=3, path=tmp_path / "q.db") as cache:
        for i in range(5):
            cache.put(f"k{i}", _entry(i))
        assert len(cache) == 3
        assert cache.get("k0") is None and cache.get("k4") is not None


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="max_entries"):
        QueryCache(max_entries=0)
    with pytest.raises(InvalidInputError, match="folder"):
        QueryCache(path=tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InvalidInputError, match="SQLite"):
        QueryCache(path=junk)


def test_fingerprint_is_stable_across_loads_and_paths(tiny_llama_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(tiny_llama_dir, copy)
    first = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu")
    second = ReasoningEmbeddings.from_pretrained(copy, device="cpu")
    assert model_fingerprint(first) == model_fingerprint(second)


def test_fingerprint_changes_with_the_weights(tiny_llama_dir: Path, tiny_qwen2_dir: Path) -> None:
    import torch

    emb = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu")
    before = model_fingerprint(emb)
    assert before != model_fingerprint(ReasoningEmbeddings.from_pretrained(tiny_qwen2_dir, device="cpu"))
    with torch.no_grad():  # the kind of change a LoRA merge makes: every value of one layer moves
        emb.model.model.layers[1].mlp.down_proj.weight.add_(1e-3)
    assert model_fingerprint(emb) == before  # remembered until told otherwise
    forget_fingerprint(emb)
    assert model_fingerprint(emb) != before


def test_encode_queries_hits_skip_generation(talkative_llama_dir: Path, count_calls) -> None:
    emb = ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=6)
    plain = emb.encode_queries(["wing lift", "heat shields"])
    emb.query_cache = QueryCache()
    calls = count_calls(emb, "reason_prompt_ids")
    first = emb.encode_queries(["wing lift", "heat shields", "wing lift"])
    assert len(calls) == 1 and len(calls[0][0][0]) == 2  # the repeat within a call is reasoned once
    again = emb.encode_queries(["heat shields", "wing lift"])
    assert len(calls) == 1  # all hits: no generation
    assert emb.query_cache.hits == 2
    np.testing.assert_array_equal(again.embeddings, first.embeddings[[1, 0]])
    np.testing.assert_array_equal(first.embeddings[:2], plain.embeddings)
    assert again.reasoning == [plain.reasoning[1], plain.reasoning[0]] and "Paris" in again.reasoning[0]
    assert list(again.forced) == list(plain.forced[[1, 0]])
    assert again.generated_tokens == plain.generated_tokens[::-1]
    # different settings are different entries; use_cache=False bypasses the cache
    emb.encode_queries(["wing lift"], max_reasoning_tokens=3)
    emb.encode_queries(["wing lift"], use_cache=False)
    assert len(calls) == 3
    no_reasoning = emb.encode_queries(["wing lift"], reasoning=False)
    np.testing.assert_array_equal(
        no_reasoning.embeddings, emb.encode_queries(["wing lift"], reasoning=False).embeddings
    )


def test_cached_sampling_needs_a_seed(tiny_embeddings: ReasoningEmbeddings, count_calls) -> None:
    cache = QueryCache()
    calls = count_calls(tiny_embeddings, "reason_prompt_ids")
    for _ in range(2):
        cache.encode_queries(tiny_embeddings, ["q"], do_sample=True, temperature=0.8)
    assert len(calls) == 2 and len(cache) == 0
    for _ in range(2):
        cache.encode_queries(tiny_embeddings, ["q"], do_sample=True, temperature=0.8, seed=3)
    assert len(calls) == 3 and len(cache) == 1


def test_invalid_queries_name_their_index(tiny_embeddings: ReasoningEmbeddings) -> None:
    cache = QueryCache()
    with pytest.raises(InvalidInputError, match="index 1"):
        cache.encode_queries(tiny_embeddings, ["fine", "  "])
    assert len(cache.encode_queries(tiny_embeddings, [])) == 0
