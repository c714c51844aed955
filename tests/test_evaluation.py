"""Metrics (ir-measures), BM25 and dense runs, and the evaluation table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from search_r3.collections import Collection, load_cranfield
from search_r3.errors import InvalidInputError
from search_r3.evaluation import (
    DEFAULT_METRICS,
    bm25_run,
    budget_rows,
    dense_run,
    encode_corpus,
    evaluate_model,
    evaluate_run,
    format_budget_table,
    format_table,
    parse_budgets,
    search_r3_rows,
    top_k_run,
)


def small_collection() -> Collection:
    corpus = {
        "wing": {"title": "Wings", "text": "The lift of a wing depends on its angle of attack."},
        "heat": {"title": "Heat", "text": "Heat conduction in composite slabs was solved."},
        "shock": {"title": "", "text": "Shock waves form ahead of a blunt body at hypersonic speed."},
        "empty": {"title": "", "text": "  "},
        "bird": {"title": "Birds", "text": "Migrating birds fly in formation to save energy."},
    }
    queries = {
        "q1": "what is the lift of a wing",
        "q2": "heat conduction in slabs",
        "q3": "shock waves at hypersonic speed",
    }
    qrels = {"q1": {"wing": 2}, "q2": {"heat": 1}, "q3": {"shock": 1, "wing": 1}}
    return Collection("small", corpus, queries, qrels)


def test_evaluate_run_matches_hand_computed_values() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"c": 1}}
    run = {"q1": {"b": 2.0, "a": 1.0}}  # relevant at rank 2; q2 missing from the run
    got = evaluate_run(qrels, run)
    assert set(got) == set(DEFAULT_METRICS)
    # a judged query absent from the run scores 0 and still counts
    assert got["RR@10"] == pytest.approx(0.5 / 2)
    assert got["nDCG@10"] == pytest.approx((1 / math.log2(3)) / 2)
    assert got["R@100"] == pytest.approx(0.5)


def test_evaluate_run_graded_relevance() -> None:
    qrels = {"q": {"a": 3, "b": 1}}
    ideal = evaluate_run(qrels, {"q": {"a": 2.0, "b": 1.0}}, ["nDCG@10"])["nDCG@10"]
    swapped = evaluate_run(qrels, {"q": {"a": 1.0, "b": 2.0}}, ["nDCG@10"])["nDCG@10"]
    assert ideal == pytest.approx(1.0) and swapped < 0.9


def test_evaluate_run_rejects_unknown_metric_and_empty_qrels() -> None:
    with pytest.raises(ValueError, match="ir-measures names"):
        evaluate_run({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["NotAMetric@3"])
    with pytest.raises(ValueError, match="No query has a relevant document"):
        evaluate_run({"q": {"a": 0}}, {"q": {"a": 1.0}})


def test_top_k_run_keeps_the_best_k() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7]])
    run = top_k_run(["q"], ["a", "b", "c", "d"], scores, 2)
    assert run == {"q": {"b": pytest.approx(0.9), "d": pytest.approx(0.7)}}


def test_bm25_ranks_the_matching_document_first() -> None:
    c = small_collection()
    run = bm25_run(c, k=3)
    for qid, best in (("q1", "wing"), ("q2", "heat"), ("q3", "shock")):
        assert max(run[qid], key=run[qid].get) == best
    assert evaluate_run(c.qrels, run)["RR@10"] == pytest.approx(1.0)


def test_dense_run_scores_are_cosines(tiny_embeddings) -> None:
    c = small_collection()
    run, encoded = dense_run(tiny_embeddings, c, reasoning=False, k=2)
    assert set(run) == set(c.queries) and all(len(docs) == 2 for docs in run.values())
    assert "empty" not in {d for docs in run.values() for d in docs}
    doc_ids, doc_vectors = encode_corpus(tiny_embeddings, c)
    assert "empty" not in doc_ids and len(doc_ids) == 4
    expected = encoded.embeddings @ doc_vectors.T
    for row, qid in enumerate(c.queries):
        best = np.argsort(-expected[row])[:2]
        assert set(run[qid]) == {doc_ids[j] for j in best}
        for j in best:
            assert run[qid][doc_ids[j]] == pytest.approx(float(expected[row, j]), abs=1e-5)


def test_dense_run_checks_doc_vectors(tiny_embeddings) -> None:
    with pytest.raises(ValueError, match="encode_corpus"):
        dense_run(tiny_embeddings, small_collection(), reasoning=False, doc_vectors=np.zeros((2, 64)))


def test_evaluate_model_table(tiny_embeddings) -> None:
    c = small_collection()
    rows = evaluate_model(
        tiny_embeddings,
        c,
        max_reasoning_tokens=3,
        keep_runs=True,
        extra_runs={"oracle": {"q1": {"wing": 1.0}, "q2": {"heat": 1.0}, "q3": {"shock": 2.0, "wing": 1.0}}},
    )
    assert [r.system for r in rows] == [
        "search-r3 (reasoning, 3 tokens)",
        "search-r3 (no reasoning)",
        "BM25",
        "oracle",
    ]
    reasoning, direct, bm25, oracle = rows
    assert 0.0 <= reasoning.forced_fraction <= 1.0 and reasoning.mean_reasoning_tokens <= 3
    assert direct.forced_fraction is None and bm25.mean_reasoning_tokens is None
    assert oracle.metrics["nDCG@10"] == pytest.approx(1.0)
    assert all(r.queries == 3 for r in rows) and reasoning.run is not None
    table = format_table(rows)
    assert table.splitlines()[0].startswith("| system | nDCG@10 | Recall@100 | MRR@10 |")
    assert len(table.splitlines()) == 2 + len(rows)
    parsed = json.loads(format_table(rows, "json"))
    assert parsed[2]["system"] == "BM25" and "run" not in parsed[2]
    assert parsed[2]["metrics"]["RR@10"] == pytest.approx(bm25.metrics["RR@10"])


def test_search_r3_rows_with_a_label(tiny_embeddings) -> None:
    c = small_collection()
    labelled = search_r3_rows(tiny_embeddings, c, label="tiny", reasoning_modes=(False,), keep_runs=True)
    (plain,) = evaluate_model(tiny_embeddings, c, reasoning_modes=(False,), bm25=False, keep_runs=True)
    assert [r.system for r in labelled] == [
        "tiny: no reasoning"
    ] and plain.system == "search-r3 (no reasoning)"
    assert labelled[0].metrics == pytest.approx(plain.metrics) and labelled[0].run == plain.run
    assert search_r3_rows(tiny_embeddings, c, label="tiny", reasoning_modes=()) == []


def test_budget_sweep_rows(tiny_embeddings, tmp_path: Path) -> None:
    c = small_collection()
    budgets = [0, 2, 5, 16]
    rows = budget_rows(tiny_embeddings, c, budgets, doc_cache=tmp_path / "vectors", keep_runs=True)
    assert [r.budget for r in rows] == budgets  # one row per budget, in the order given
    assert all(r.system == "search-r3" and r.queries == 3 and r.seconds > 0 for r in rows)
    off = rows[0]
    assert off.max_reasoning_tokens == 0 and off.mean_reasoning_tokens == 0  # budget 0: no reasoning
    assert off.forced_fraction is None
    for row in rows[1:]:
        assert 0 <= row.mean_reasoning_tokens <= row.max_reasoning_tokens <= row.budget
        assert 0.0 <= row.forced_fraction <= 1.0
    # A random model rarely emits the embed token: the small budgets are spent, so they differ.
    assert rows[1].max_reasoning_tokens == 2 and rows[2].max_reasoning_tokens == 5
    # Each row ranks exactly as the plain evaluation does at that budget.
    direct, reasoned = (
        search_r3_rows(tiny_embeddings, c, reasoning_modes=(mode,), max_reasoning_tokens=5, keep_runs=True)[0]
        for mode in (False, True)
    )
    assert off.run == direct.run and rows[2].run == reasoned.run
    assert rows[2].metrics == pytest.approx({m: reasoned.metrics[m] for m in ("nDCG@10", "R@100")})
    # The document vectors were kept, and a second sweep reads them back.
    assert len(list((tmp_path / "vectors").glob("corpus-*.npy"))) == 1
    again = budget_rows(tiny_embeddings, c, [0], doc_cache=tmp_path / "vectors", label="tiny")
    assert again[0].system == "tiny" and again[0].metrics == pytest.approx(off.metrics)

    table = format_budget_table([*rows, *evaluate_model(tiny_embeddings, c, reasoning_modes=())])
    lines = table.splitlines()
    assert lines[0].startswith("| system | budget | nDCG@10 | Recall@100 | forced |")  # sweep metrics
    assert lines[0].endswith("| reasoning tokens (mean / most) | queries/s |")
    assert len(lines) == 2 + len(rows) + 1
    assert lines[2].startswith("| search-r3 | 0 |") and "| - | 0.0 / 0 |" in lines[2]
    assert f"| {rows[2].mean_reasoning_tokens:.1f} / {rows[2].max_reasoning_tokens} |" in lines[4]
    assert lines[-1].startswith("| BM25 | - |") and "| - | - |" in lines[-1]  # no forced, no tokens
    record = rows[1].to_dict()
    assert record["budget"] == 2 and record["queries_per_second"] == pytest.approx(3 / rows[1].seconds)
    assert "budget" not in direct.to_dict()


def test_budget_sweep_repeats_time_every_budget_and_keep_the_fastest(tiny_embeddings, count_calls) -> None:
    c = small_collection()
    once = budget_rows(tiny_embeddings, c, [0, 3])
    calls = count_calls(tiny_embeddings, "encode_queries")
    twice = budget_rows(tiny_embeddings, c, [0, 3], repeats=2)
    timed = [kw.get("max_reasoning_tokens") for args, kw in calls if len(args[0]) == 3]  # not the warm-up
    assert timed == [None, 3, None, 3]  # round-robin: every budget in each round
    assert [r.metrics for r in twice] == [pytest.approx(r.metrics) for r in once]
    with pytest.raises(InvalidInputError, match="repeats must be a whole number >= 1"):
        budget_rows(tiny_embeddings, c, [0], repeats=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "not a whole number"), ("8,x", "'x' is not"), ("-1", "'-1' is not"), ("8,8", "given twice")],
)
def test_parse_budgets_rejects_bad_lists(value: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_budgets(value)
    assert parse_budgets("0, 8,128") == [0, 8, 128] and parse_budgets([16, 0]) == [16, 0]


def test_cranfield_bm25_matches_the_published_figure(cranfield_dir: Path) -> None:
    c = load_cranfield(cranfield_dir)
    got = evaluate_run(c.qrels, bm25_run(c, k=100))
    # offline-assets.md: BM25 (bm25s, English stop words) nDCG@10 0.511 over all 225 queries
    assert got["nDCG@10"] == pytest.approx(0.511, abs=0.002)


def test_eval_options_give_every_kind_of_row_the_same_settings(tiny_embeddings, tmp_path: Path) -> None:
    """``search-r3 eval`` gathers its options once: each row kind gets the same label, metrics and depth."""
    from dataclasses import replace

    from search_r3.cli.eval_cmd import EvalOptions
    from search_r3.evaluation import retrieval_setups

    c = small_collection()
    plain = EvalOptions(metrics=("nDCG@10",), k=2, reasoning_modes=(False,), doc_cache=tmp_path / "vectors")
    kinds = {
        "numpy": plain,
        "budget sweep": replace(plain, budgets=(0,)),
        "store": replace(plain, setups=tuple(retrieval_setups(["dense"]))),
    }
    rows = {name: options.model_rows(tiny_embeddings, c, label="tiny") for name, options in kinds.items()}
    assert [r.system for r in rows["numpy"]] == ["tiny: no reasoning"]
    assert [r.system for r in rows["budget sweep"]] == ["tiny"]
    assert [r.system for r in rows["store"]] == ["tiny: no reasoning · dense"]
    for name, (row,) in rows.items():
        assert list(row.metrics) == ["nDCG@10"], name
    # the same dense ranking, cut at the same depth (2 of 4 documents), scores the same
    depth_2 = search_r3_rows(tiny_embeddings, c, reasoning_modes=(False,), metrics=("nDCG@10",), k=2)[0]
    full = search_r3_rows(tiny_embeddings, c, reasoning_modes=(False,), metrics=("nDCG@10",))[0]
    assert depth_2.metrics != pytest.approx(full.metrics)  # the depth changes the figure here
    for name, (row,) in rows.items():
        assert row.metrics == pytest.approx(depth_2.metrics, abs=1e-6), name


def test_store_rows_rank_on_the_embedded_engine_as_the_in_memory_store_did(
    tiny_embeddings, tmp_path: Path, monkeypatch
) -> None:
    """Store rows run on the default engine (qdrant-edge) in a temporary folder, removed afterwards,
    and rank as qdrant-client's ``:memory:`` store (the engine they used before) ranks the same vectors."""
    import tempfile

    from search_r3.evaluation import retrieval_setups, search_r3_system_name, store_rows, store_run
    from search_r3.store import QdrantStore

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    engines: set[tuple[str, Path]] = set()
    original = QdrantStore.search_encoded

    def recording(self: QdrantStore, *args, **kwargs):
        engines.add((self.backend, self.client.folder.parent.parent))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(QdrantStore, "search_encoded", recording)
    c = small_collection()
    setups = retrieval_setups(["dense", "sparse", "hybrid"], rrf_weights=((1.0, 1.0),))
    rows = store_rows(tiny_embeddings, c, setups, max_reasoning_tokens=2, keep_runs=True)
    assert engines == {("edge", temp)}  # one embedded store, in a folder under the temporary directory
    assert list(temp.iterdir()) == []  # removed afterwards
    monkeypatch.setattr(QdrantStore, "search_encoded", original)

    ids, vectors = encode_corpus(tiny_embeddings, c)
    query_ids = list(c.queries)
    texts = [c.queries[q] for q in query_ids]
    expected: dict[str, dict] = {}
    with QdrantStore(tiny_embeddings, "before", path=":memory:") as before:
        before.add_vectors(vectors, [c.doc_text(d) for d in ids], ids)
        for reasoning in (True, False):
            encoded = tiny_embeddings.encode_queries(texts, reasoning=reasoning, max_reasoning_tokens=2)
            for setup in setups:
                name = f"{search_r3_system_name(reasoning, 2)} · {setup.describe(reasoning)}"
                expected[name] = store_run(before, query_ids, texts, encoded, setup, k=100)
    expected["search-r3 · sparse"] = expected["search-r3 (no reasoning) · sparse"]
    # with reasoning: dense, expanded sparse, each fusion with and without expansion; without: dense,
    # sparse (once for both modes), each fusion
    assert len(rows) == 6 + 4
    for row in rows:
        for qid in query_ids:
            assert row.run[qid] == pytest.approx(expected[row.system][qid], rel=1e-4, abs=1e-5), row.system
