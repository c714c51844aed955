"""QueryEngine: queries that arrive while others decode join the batch and get what they get alone.

The tiny random models of conftest get larger random decoder weights (as in test_decoding) so that
greedy decoding writes varied tokens, and a bias on the embed token's logit, chosen so that some
queries emit the token after a few steps and others run to their budget: rows then join and leave
the running batch at different steps.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from search_r3 import InvalidInputError, ReasoningEmbeddings
from search_r3.engine import EngineClosedError, QueryEngine, auto_workers

QUERIES = [
    "which city hosts the Louvre?",
    "how do plants turn light into sugar, and why does it matter for the climate?",
    "fruit",
    "what is the boiling point of water at high altitude",
    "who wrote the treaty that ended the thirty years war",
    "attention",
    "boundary layer transition on a flat plate",
    "heat transfer in hypersonic flow",
]
BUDGETS = [12, 5, 9, 0, 14, 7, 3, 11]


def _embeddings(model_dir, embed_bias: float | None = None) -> ReasoningEmbeddings:
    emb = ReasoningEmbeddings.from_pretrained(model_dir, device="cpu", max_reasoning_tokens=10)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in emb.model.model.layers.parameters():
            if weight.dim() == 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.1)
        if embed_bias is not None:
            head = emb.model.get_output_embeddings()
            head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0]))
            head.bias[emb.embed_id] = embed_bias
    return emb


def _embed_margins(emb, prompt, steps):
    """How far the embed token's logit is below the best one at each greedy step."""
    seq, margins = list(prompt), []
    with torch.inference_mode():
        for _ in range(steps):
            logits = emb.model(input_ids=torch.tensor([seq])).logits[0, -1]
            margins.append(float(logits.max() - logits[emb.embed_id]))
            others = logits.clone()
            others[emb.embed_id] = -float("inf")
            seq.append(int(others.argmax()))
    return margins


@pytest.fixture(scope="module")
def emb(tiny_model_dir):
    """A model where greedy decoding emits the embed token for some queries and not others.

    A bias on the token's logit does not change which other token is the best, so a row emits
    the token at the first step whose margin is below the bias: a bias between the rows' smallest
    margins makes some rows stop early (at varied steps) and the others run to their budget.
    """
    plain = _embeddings(tiny_model_dir)
    lowest = sorted(min(_embed_margins(plain, p, 12)) for p in plain.prompts.build(QUERIES, "reasoning"))
    middle = len(lowest) // 2
    biased = _embeddings(tiny_model_dir, (lowest[middle - 1] + lowest[middle]) / 2)
    alone = biased.encode_queries(QUERIES, max_reasoning_tokens=12)
    assert 0 < int((~alone.forced).sum()) < len(QUERIES), "no bias mixes emitting and forced rows"
    return biased


def _alone(emb, query, budget=None, reasoning=None):
    return emb.encode_queries([query], max_reasoning_tokens=budget, reasoning=reasoning)


def _assert_same(got, want):
    assert len(got) == 1
    assert got.reasoning == want.reasoning
    assert got.forced.tolist() == want.forced.tolist()
    assert got.generated_tokens == want.generated_tokens
    cosine = float(got.embeddings[0] @ want.embeddings[0])
    assert cosine >= 0.99999, cosine
    assert got.embeddings.dtype == np.float32 and got.embeddings.shape == want.embeddings.shape


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.mark.parametrize("backend", ["slots", "transformers"])
def test_staggered_arrivals_get_what_they_get_alone(emb, backend):
    with QueryEngine(emb, max_batch_size=32, backend=backend) as engine:
        futures = []
        for i, (query, budget) in enumerate(zip(QUERIES, BUDGETS, strict=True)):
            if i % 3 == 1:  # let the running batch take a few steps before this one arrives
                steps = engine.stats.steps
                _wait_for(lambda s=steps: engine.stats.steps >= s + 2 or not engine.live)
            futures.append(engine.submit(query, max_reasoning_tokens=budget))
        results = [f.result(timeout=120) for f in futures]
        stats = engine.stats
    for query, budget, got in zip(QUERIES, BUDGETS, results, strict=True):
        _assert_same(got, _alone(emb, query, budget))
    assert stats.completed == len(QUERIES) and stats.failed == 0
    assert stats.row_steps > stats.steps  # rows did decode together
    assert stats.generated_tokens == sum(r.generated_tokens[0] for r in results)


def test_rows_join_a_running_batch(emb):
    """With the slots backend a query starts at the next step, not when the batch ends."""
    want_long, want_short = _alone(emb, QUERIES[0], 40), _alone(emb, QUERIES[2], 2)
    with QueryEngine(emb) as engine:
        long_one = engine.submit(QUERIES[0], max_reasoning_tokens=40)
        _wait_for(lambda: engine.stats.steps >= 2)
        short = engine.submit(QUERIES[2], max_reasoning_tokens=2)
        short.result(timeout=60)
        if want_long.generated_tokens[0] > 20:  # the long one is still decoding
            assert not long_one.done()
        _assert_same(long_one.result(timeout=60), want_long)
        _assert_same(short.result(), want_short)


def test_many_threads_submitting_at_once(emb):
    with QueryEngine(emb, max_batch_size=3) as engine, ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(lambda q: engine.submit(q), QUERIES * 2))
        results = [f.result(timeout=120) for f in futures]
    for query, got in zip(QUERIES * 2, results, strict=True):
        _assert_same(got, _alone(emb, query))


def test_reasoning_off_and_budgets_per_request(emb):
    with QueryEngine(emb) as engine:
        direct = engine.submit(QUERIES[1], reasoning=False)
        zero = engine.submit(QUERIES[1], max_reasoning_tokens=0)
        default = engine.submit(QUERIES[1])
        got_direct = direct.result(timeout=60)
        _assert_same(got_direct, _alone(emb, QUERIES[1], reasoning=False))
        assert got_direct.reasoning == [""] and got_direct.generated_tokens == [0]
        _assert_same(zero.result(timeout=60), _alone(emb, QUERIES[1], 0))
        assert zero.result().forced.tolist() == [True]
        _assert_same(default.result(timeout=60), _alone(emb, QUERIES[1]))


def test_a_bad_request_fails_alone(emb):
    with QueryEngine(emb) as engine:
        good = [engine.submit(q, max_reasoning_tokens=4) for q in QUERIES[:3]]
        bad = [
            engine.submit(""),
            engine.submit(123),  # type: ignore[arg-type]
            engine.submit("fine text", max_reasoning_tokens=-1),
            engine.submit("fine text", max_reasoning_tokens=2.5),  # type: ignore[arg-type]
        ]
        for future in bad:
            with pytest.raises(InvalidInputError):
                future.result(timeout=60)
        for query, future in zip(QUERIES, good, strict=False):
            _assert_same(future.result(timeout=60), _alone(emb, query, 4))
        assert engine.stats.failed == len(bad)


def test_a_failed_step_fails_its_rows_and_the_engine_goes_on(emb):
    with QueryEngine(emb) as engine:
        backend = engine._decoder.backend
        original = backend.step
        calls = {"n": 0}

        def flaky(tokens):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("simulated failure")
            return original(tokens)

        backend.step = flaky
        doomed = engine.submit(QUERIES[0], max_reasoning_tokens=6)
        with pytest.raises(RuntimeError, match="simulated"):
            doomed.result(timeout=60)
        backend.step = original
        _assert_same(engine.submit(QUERIES[0]).result(timeout=60), _alone(emb, QUERIES[0]))


def test_close_drains_then_refuses(emb):
    engine = QueryEngine(emb)
    futures = [engine.submit(q, max_reasoning_tokens=8) for q in QUERIES[:4]]
    engine.close(drain=True)
    assert all(f.done() and f.exception() is None for f in futures)
    assert engine.closed
    with pytest.raises(EngineClosedError, match="closed"):
        engine.submit("another")
    engine.close()  # closing twice is harmless


def test_close_without_drain_fails_what_is_left(emb):
    engine = QueryEngine(emb, max_batch_size=1)
    futures = [engine.submit(q, max_reasoning_tokens=30) for q in QUERIES]
    engine.close(drain=False)
    outcomes = [f.exception(timeout=60) for f in futures]
    assert any(isinstance(e, EngineClosedError) for e in outcomes)
    assert all(e is None or isinstance(e, EngineClosedError) for e in outcomes)
    assert not any(t.name == "search-r3-query-engine" and t.is_alive() for t in threading.enumerate())


def test_invalid_batch_size(emb):
    with pytest.raises(ValueError, match="max_batch_size"):
        QueryEngine(emb, max_batch_size=0)
    for threads in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            QueryEngine(emb, threads=threads)  # type: ignore[arg-type]


def test_work_runs_on_the_engine_thread_between_steps(emb):
    """``call`` runs other model work on the engine's thread, with its ``threads``, while
    queries decode; a failing piece of work fails only its own future."""
    want = _alone(emb, QUERIES[0], 30)
    with QueryEngine(emb, threads=3) as engine:
        query = engine.submit(QUERIES[0], max_reasoning_tokens=30)
        _wait_for(lambda: engine.stats.steps >= 2)
        where = engine.call(lambda: (threading.current_thread().name, torch.get_num_threads(), engine.live))
        broken = engine.call(lambda: 1 / 0)
        name, threads, live = where.result(timeout=60)
        with pytest.raises(ZeroDivisionError):
            broken.result(timeout=60)
        vectors = engine.call(lambda: emb.encode_documents(["a document"], show_progress_bar=False))
        assert np.allclose(vectors.result(timeout=60), emb.encode_documents(["a document"]), atol=1e-5)
        _assert_same(query.result(timeout=60), want)
    assert name == "search-r3-query-engine" and threads == 3
    if want.generated_tokens[0] > 20:
        assert live == 1  # it ran between two steps of the decoding query
    with pytest.raises(EngineClosedError):
        engine.call(lambda: None)


def _spy_steps(engine):
    """Record (worker, torch threads, workers whose threads are lent, live rows of every worker)
    at each decoding step."""
    seen = []
    for worker in engine._workers:
        step = worker.decoder.step

        def spied(step=step, index=worker.index):
            rows = [len(w.decoder.rows) for w in engine._workers]
            seen.append((index, torch.get_num_threads(), set(engine._lent), rows))
            return step()

        worker.decoder.step = spied
    return seen


def test_workers_share_the_queries_and_get_what_they_get_alone(emb):
    """Two decode workers, each its own batch: every query gets what it gets alone, and both
    workers decode (the second once the first is full)."""
    want = [_alone(emb, q, b) for q, b in zip(QUERIES, BUDGETS, strict=True)]
    with QueryEngine(emb, max_batch_size=4, threads=2, workers=2) as engine:
        assert engine.workers == 2 and [w.rows for w in engine._workers] == [2, 2]
        seen = _spy_steps(engine)
        with ThreadPoolExecutor(len(QUERIES)) as pool:
            submitted = [
                pool.submit(engine.submit, q, max_reasoning_tokens=b)
                for q, b in zip(QUERIES, BUDGETS, strict=True)
            ]
            futures = [f.result() for f in submitted]
        got = [f.result(timeout=60) for f in futures]
        assert engine.stats.completed == len(QUERIES)
    for g, w in zip(got, want, strict=True):
        _assert_same(g, w)
    assert {index for index, _, _, _ in seen} == {0, 1}
    assert max(rows[0] for *_, rows in seen) == 2 and max(rows[1] for *_, rows in seen) <= 2
    assert not any(
        t.name.startswith("search-r3-query-engine") and t.is_alive() for t in threading.enumerate()
    )


def test_a_lone_query_runs_on_every_thread_and_shares_them_when_another_comes(emb):
    """The first worker runs on the threads of the workers with no query; a query on the second
    worker takes its thread back (from the first worker's next step on)."""
    first, second = QUERIES[1], QUERIES[6]
    with QueryEngine(emb, max_batch_size=2, threads=2, workers=2) as engine:
        seen = _spy_steps(engine)
        lone = engine.submit(first, max_reasoning_tokens=14)
        _wait_for(lambda: len(seen) >= 2)
        other = engine.submit(second, max_reasoning_tokens=14)
        _assert_same(lone.result(timeout=60), _alone(emb, first, 14))
        _assert_same(other.result(timeout=60), _alone(emb, second, 14))
    first_worker = [(threads, lent, rows) for index, threads, lent, rows in seen if index == 0]
    assert all(threads == (2 if lent == {1} else 1) for threads, lent, _ in first_worker)
    assert first_worker[0][0] == 2  # alone: on both threads
    assert any(threads == 1 and rows == [1, 1] for threads, _, rows in first_worker)  # shared
    assert all(threads == 1 and not lent for index, threads, lent, _ in seen if index == 1)


def test_workers_close_drains_and_documents_run_on_the_first(emb):
    engine = QueryEngine(emb, max_batch_size=4, threads=2, workers=2)
    futures = [engine.submit(q, max_reasoning_tokens=8) for q in QUERIES]
    where = engine.call(lambda: threading.current_thread().name)
    off = engine.submit(QUERIES[2], reasoning=False)
    engine.close(drain=True)
    assert all(f.done() and f.exception() is None for f in futures)
    assert where.result(timeout=0) == "search-r3-query-engine"
    _assert_same(off.result(timeout=0), _alone(emb, QUERIES[2], reasoning=False))
    assert not any(
        t.name.startswith("search-r3-query-engine") and t.is_alive() for t in threading.enumerate()
    )


def test_invalid_workers_and_auto(emb):
    for workers in (0, -1, 5, 1.5, True, "many"):
        with pytest.raises(ValueError, match="workers"):
            QueryEngine(emb, max_batch_size=4, threads=2, workers=workers)  # type: ignore[arg-type]
    assert (auto_workers(16, 2), auto_workers(1, 2), auto_workers(7, 2), auto_workers(32, 1)) == (2, 1, 1, 1)
    with QueryEngine(emb, max_batch_size=8, threads=2, workers="auto") as engine:
        assert engine.workers == 2 and [w.threads for w in engine._workers] == [1, 1]


# -- the real shipped model (off by default: `make test-slow`) -----------------------------------
@pytest.mark.slow
def test_shipped_model_through_the_engine_matches_encode_queries():
    from search_r3.demo import demo_queries

    real = ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m", device="cpu", dtype="float32")
    queries = demo_queries()
    want = [real.encode_queries([q], max_reasoning_tokens=32) for q in queries]
    with QueryEngine(real) as engine:
        futures = []
        for query in queries:
            futures.append(engine.submit(query, max_reasoning_tokens=32))
            _wait_for(lambda: engine.stats.steps >= 2 * len(futures) or not engine.live)
        got = [f.result(timeout=600) for f in futures]
        assert engine.stats.row_steps > engine.stats.steps  # queries did decode together
    for g, w in zip(got, want, strict=True):
        _assert_same(g, w)
