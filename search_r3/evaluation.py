"""Retrieval evaluation: dense runs (reasoning on and off), a BM25 baseline, metrics and a table.

Metrics come from ``ir-measures`` (pytrec_eval underneath), so figures agree with what other IR
toolkits report. Runs are plain ``{query_id: {doc_id: score}}`` dicts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from search_r3.collections import Collection

if TYPE_CHECKING:
    from search_r3.model import QueryEncodings, ReasoningEmbeddings

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]

#: ir-measures names; reported as nDCG@10, Recall@100 and MRR@10.
DEFAULT_METRICS: tuple[str, ...] = ("nDCG@10", "R@100", "RR@10")


def display_name(metric: str) -> str:
    """Report name of an ir-measures metric (``R@100`` -> ``Recall@100``, ``RR@10`` -> ``MRR@10``)."""
    if metric.startswith("RR@"):
        return "MRR@" + metric[3:]
    if metric.startswith("R@"):
        return "Recall@" + metric[2:]
    return metric


def evaluate_run(
    qrels: dict[str, dict[str, int]], run: Run, metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, float]:
    """Mean of each metric over the judged queries (a judged query missing from ``run`` scores 0).

    Args:
        qrels: ``query_id -> {doc_id: relevance}``.
        run: ``query_id -> {doc_id: score}``.
        metrics: ir-measures names such as ``"nDCG@10"``, ``"R@100"``, ``"RR@10"``, ``"AP"``.

    Returns:
        ``{metric name as given: value}``.
    """
    import ir_measures

    judged = {q: d for q, d in qrels.items() if any(v > 0 for v in d.values())}
    if not judged:
        raise ValueError("No query has a relevant document in qrels; nothing to evaluate.")
    try:
        parsed = {name: ir_measures.parse_measure(name) for name in metrics}
    except (ValueError, NameError, TypeError) as exc:
        raise ValueError(
            f"Unknown metric in {list(metrics)}: {exc}. "
            "Use ir-measures names, e.g. nDCG@10, R@100, RR@10, AP."
        ) from exc
    sums = dict.fromkeys(metrics, 0.0)
    clean_run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in judged}
    by_measure = {measure: name for name, measure in parsed.items()}
    for metric in ir_measures.iter_calc(list(parsed.values()), judged, clean_run):
        sums[by_measure[metric.measure]] += float(metric.value)
    # pytrec_eval leaves out queries absent from the run; they count as 0 here, over all judged.
    return {name: sums[name] / len(judged) for name in metrics}


def top_k_run(query_ids: Sequence[str], doc_ids: Sequence[str], scores: np.ndarray, k: int) -> Run:
    """Top ``k`` documents per row of a ``(queries, docs)`` score matrix."""
    k = min(k, scores.shape[1])
    run: Run = {}
    if k <= 0:
        return {q: {} for q in query_ids}
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    for row, qid in enumerate(query_ids):
        picked = top[row]
        run[qid] = {doc_ids[j]: float(scores[row, j]) for j in picked}
    return run


def encode_corpus(
    embeddings: ReasoningEmbeddings, collection: Collection, show_progress_bar: bool | None = None
) -> tuple[list[str], np.ndarray]:
    """Document ids (empty documents left out) and their vectors, in corpus order."""
    ids = [d for d in collection.doc_ids() if collection.doc_text(d).strip()]
    skipped = len(collection.corpus) - len(ids)
    if skipped:
        logger.warning("%s: %d empty documents left out of the index.", collection.name, skipped)
    texts = [collection.doc_text(d) for d in ids]
    return ids, embeddings.encode_documents(texts, show_progress_bar=show_progress_bar)


def dense_run(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    *,
    reasoning: bool,
    k: int = 100,
    max_reasoning_tokens: int | None = None,
    doc_vectors: np.ndarray | None = None,
    show_progress_bar: bool | None = None,
) -> tuple[Run, QueryEncodings]:
    """Rank the corpus for every query by cosine to the query embedding.

    Args:
        reasoning: Reason before embedding each query.
        doc_vectors: Vectors of the non-empty documents in corpus order (from
            :func:`encode_corpus`), to encode the corpus only once across runs.
    """
    doc_ids = [d for d in collection.doc_ids() if collection.doc_text(d).strip()]
    if doc_vectors is None:
        doc_ids, doc_vectors = encode_corpus(embeddings, collection, show_progress_bar)
    elif len(doc_vectors) != len(doc_ids):
        raise ValueError(
            f"doc_vectors has {len(doc_vectors)} rows but the collection has {len(doc_ids)} non-empty "
            "documents; make them with encode_corpus(embeddings, collection)."
        )
    query_ids = list(collection.queries)
    encoded = embeddings.encode_queries(
        [collection.queries[q] for q in query_ids],
        reasoning=reasoning,
        max_reasoning_tokens=max_reasoning_tokens,
        show_progress_bar=show_progress_bar,
    )
    scores = encoded.embeddings @ np.asarray(doc_vectors, dtype=np.float32).T
    return top_k_run(query_ids, doc_ids, scores, k), encoded


def bm25_run(collection: Collection, k: int = 100, show_progress_bar: bool = False) -> Run:
    """BM25 (bm25s defaults, English stop words) over title + text."""
    import bm25s

    doc_ids = collection.doc_ids()
    corpus_tokens = bm25s.tokenize(
        [collection.doc_text(d) for d in doc_ids], stopwords="en", show_progress=show_progress_bar
    )
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=show_progress_bar)
    query_ids = list(collection.queries)
    query_tokens = bm25s.tokenize(
        [collection.queries[q] for q in query_ids], stopwords="en", show_progress=show_progress_bar
    )
    found, scores = retriever.retrieve(query_tokens, k=min(k, len(doc_ids)), show_progress=show_progress_bar)
    run: Run = {}
    for row, qid in enumerate(query_ids):
        run[qid] = {doc_ids[int(j)]: float(s) for j, s in zip(found[row], scores[row], strict=True) if s > 0}
    return run


@dataclass
class EvalRow:
    """One system's line in an evaluation table.

    Attributes:
        system: Name, e.g. ``search-r3 (reasoning, 32 tokens)``, ``search-r3 (no reasoning)``, ``BM25``.
        metrics: ``{ir-measures name: mean value}``.
        queries: Number of queries evaluated.
        forced_fraction: Share of queries whose reasoning hit the budget without the embed token
            (``None`` when the system does not reason).
        mean_reasoning_tokens: Mean generated tokens per query (``None`` without reasoning).
        seconds: Wall time of the queries (encoding and ranking; the shared corpus encoding is
            in ``corpus_seconds``).
        corpus_seconds: Wall time of encoding or indexing the corpus for this system.
    """

    system: str
    metrics: dict[str, float]
    queries: int
    forced_fraction: float | None = None
    mean_reasoning_tokens: float | None = None
    seconds: float = 0.0
    corpus_seconds: float = 0.0
    run: Run | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("run")
        return out


def evaluate_model(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    *,
    reasoning_modes: Sequence[bool] = (True, False),
    bm25: bool = True,
    extra_runs: dict[str, Run] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int = 100,
    max_reasoning_tokens: int | None = None,
    show_progress_bar: bool | None = None,
    keep_runs: bool = False,
) -> list[EvalRow]:
    """Evaluate a model with reasoning on and/or off (corpus encoded once) against BM25.

    Args:
        reasoning_modes: Which query modes to run, in table order.
        bm25: Add a BM25 baseline row.
        extra_runs: Ready-made runs to score in the same table (``{system name: run}``).
        max_reasoning_tokens: Reasoning budget (default: the model's setting).
        keep_runs: Keep each row's run in ``EvalRow.run``.
    """
    queries = collection.subset(collection.judged_query_ids())
    if not queries.queries:
        raise ValueError(f"{collection.name}: no query has a relevant document; nothing to evaluate.")
    rows: list[EvalRow] = []
    if reasoning_modes:
        start = time.perf_counter()
        _, doc_vectors = encode_corpus(embeddings, queries, show_progress_bar)
        corpus_seconds = time.perf_counter() - start
        budget = max_reasoning_tokens if max_reasoning_tokens is not None else embeddings.max_reasoning_tokens
        for reasoning in reasoning_modes:
            start = time.perf_counter()
            run, encoded = dense_run(
                embeddings,
                queries,
                reasoning=reasoning,
                k=k,
                max_reasoning_tokens=budget,
                doc_vectors=doc_vectors,
                show_progress_bar=show_progress_bar,
            )
            elapsed = time.perf_counter() - start
            rows.append(
                EvalRow(
                    system=f"search-r3 (reasoning, {budget} tokens)"
                    if reasoning
                    else "search-r3 (no reasoning)",
                    metrics=evaluate_run(queries.qrels, run, metrics),
                    queries=len(queries.queries),
                    forced_fraction=float(np.mean(encoded.forced)) if reasoning else None,
                    mean_reasoning_tokens=float(np.mean(encoded.generated_tokens)) if reasoning else None,
                    seconds=elapsed,
                    corpus_seconds=corpus_seconds,
                    run=run if keep_runs else None,
                )
            )
    if bm25:
        start = time.perf_counter()
        run = bm25_run(queries, k=k)
        rows.append(
            EvalRow(
                system="BM25",
                metrics=evaluate_run(queries.qrels, run, metrics),
                queries=len(queries.queries),
                seconds=time.perf_counter() - start,
                run=run if keep_runs else None,
            )
        )
    for name, run in (extra_runs or {}).items():
        rows.append(
            EvalRow(
                system=name,
                metrics=evaluate_run(queries.qrels, run, metrics),
                queries=len(queries.queries),
                run=run if keep_runs else None,
            )
        )
    return rows


def format_table(rows: Sequence[EvalRow], fmt: str = "markdown") -> str:
    """Rows as a markdown table (metrics, forced share, mean reasoning tokens, seconds) or JSON."""
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=2)
    if fmt != "markdown":
        raise ValueError(f"fmt must be 'markdown' or 'json', not {fmt!r}.")
    if not rows:
        return "(no results)"
    metric_names = list(rows[0].metrics)
    header = ["system", *(display_name(m) for m in metric_names), "forced", "reasoning tokens", "query s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|"]
    for row in rows:
        cells = [row.system, *(f"{row.metrics.get(m, float('nan')):.4f}" for m in metric_names)]
        cells.append("-" if row.forced_fraction is None else f"{row.forced_fraction:.0%}")
        cells.append("-" if row.mean_reasoning_tokens is None else f"{row.mean_reasoning_tokens:.1f}")
        cells.append(f"{row.seconds:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
