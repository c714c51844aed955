"""Retrieval evaluation: dense, sparse and hybrid runs (reasoning on and off), baselines, metrics, a table.

Metrics come from ``ir-measures`` (pytrec_eval underneath), so figures agree with what other IR
toolkits report. Runs are plain ``{query_id: {doc_id: score}}`` dicts. Every system's rows are
built by one function each (`search_r3_rows`, `sentence_transformer_row`,
`bm25_row`), so several models can share one table; `evaluate_model` is the usual
one-model table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search_r3.collections import Collection
from search_r3.errors import InvalidInputError

if TYPE_CHECKING:
    from search_r3.model import QueryEncodings, ReasoningEmbeddings
    from search_r3.sparse import Bm25Settings
    from search_r3.store import HybridSettings, QdrantStore

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]

#: ir-measures names; reported as nDCG@10, Recall@100 and MRR@10.
DEFAULT_METRICS: tuple[str, ...] = ("nDCG@10", "R@100", "RR@10")
#: The metrics of a reasoning-budget sweep (`budget_rows`): nDCG@10 and Recall@100.
BUDGET_METRICS: tuple[str, ...] = ("nDCG@10", "R@100")


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
        raise InvalidInputError("No query has a relevant document in qrels; nothing to evaluate.")
    try:
        parsed = {name: ir_measures.parse_measure(name) for name in metrics}
    except (ValueError, NameError, TypeError) as exc:
        raise InvalidInputError(
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


def rank_by_vectors(
    query_ids: Sequence[str],
    query_vectors: np.ndarray,
    doc_ids: Sequence[str],
    doc_vectors: np.ndarray,
    k: int,
) -> Run:
    """Top ``k`` documents per query by dot product (cosine for unit vectors)."""
    scores = np.asarray(query_vectors, dtype=np.float32) @ np.asarray(doc_vectors, dtype=np.float32).T
    return top_k_run(query_ids, doc_ids, scores, k)


def indexable_documents(collection: Collection, *, warn: bool = False) -> tuple[list[str], list[str]]:
    """Ids and texts of the non-empty documents, in corpus order (what every dense index holds)."""
    ids = [d for d in collection.doc_ids() if collection.doc_text(d).strip()]
    skipped = len(collection.corpus) - len(ids)
    if warn and skipped:
        logger.warning("%s: %d empty documents left out of the index.", collection.name, skipped)
    return ids, [collection.doc_text(d) for d in ids]


def encode_corpus(
    embeddings: ReasoningEmbeddings, collection: Collection, show_progress_bar: bool | None = None
) -> tuple[list[str], np.ndarray]:
    """Document ids (empty documents left out) and their vectors, in corpus order."""
    ids, texts = indexable_documents(collection, warn=True)
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
            `encode_corpus`), to encode the corpus only once across runs.
    """
    doc_ids, _ = indexable_documents(collection)
    if doc_vectors is None:
        doc_ids, doc_vectors = encode_corpus(embeddings, collection, show_progress_bar)
    elif len(doc_vectors) != len(doc_ids):
        raise InvalidInputError(
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
    return rank_by_vectors(query_ids, encoded.embeddings, doc_ids, doc_vectors, k), encoded


def sentence_transformer_run(
    model: Any, collection: Collection, *, k: int = 100, show_progress_bar: bool | None = None
) -> tuple[Run, float, float]:
    """Rank the corpus with a ``sentence_transformers.SentenceTransformer`` (a baseline).

    Documents go through ``encode_document`` and queries through ``encode_query`` (so models with
    query/document prompts use them), both normalised, and are ranked like `dense_run`.

    Returns:
        The run, the seconds spent encoding the corpus, and the seconds spent on the queries.
    """
    start = time.perf_counter()
    doc_ids, texts = indexable_documents(collection, warn=True)
    doc_vectors = model.encode_document(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=show_progress_bar
    )
    corpus_seconds = time.perf_counter() - start
    start = time.perf_counter()
    query_ids = list(collection.queries)
    query_vectors = model.encode_query(
        [collection.queries[q] for q in query_ids],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress_bar,
    )
    run = rank_by_vectors(query_ids, query_vectors, doc_ids, doc_vectors, k)
    return run, corpus_seconds, time.perf_counter() - start


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
        system: Name, e.g. ``search-r3 (reasoning, 32 tokens)``, ``search-r3 (no reasoning)``,
            ``MODEL: no reasoning`` (several models in one table), ``sentence-transformers: MODEL``,
            ``BM25``.
        metrics: ``{ir-measures name: mean value}``.
        queries: Number of queries evaluated.
        forced_fraction: Share of queries whose reasoning hit the budget without the embed token
            (``None`` when the system does not reason).
        mean_reasoning_tokens: Mean generated tokens per query (``None`` without reasoning).
        seconds: Wall time of the queries (encoding and ranking; the shared corpus encoding is
            in ``corpus_seconds``).
        corpus_seconds: Wall time of encoding or indexing the corpus for this system.
        budget: The reasoning budget of a budget-sweep row (0: reasoning off; ``None``
            elsewhere). Its ``system`` is then the model's label.
        max_reasoning_tokens: Most tokens any query generated (budget-sweep rows only).
    """

    system: str
    metrics: dict[str, float]
    queries: int
    forced_fraction: float | None = None
    mean_reasoning_tokens: float | None = None
    seconds: float = 0.0
    corpus_seconds: float = 0.0
    budget: int | None = None
    max_reasoning_tokens: int | None = None
    run: Run | None = field(default=None, repr=False, compare=False)

    @property
    def queries_per_second(self) -> float:
        """Queries answered per second of ``seconds`` (``inf`` when no time was measured)."""
        return self.queries / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("run")
        if self.budget is None:
            out.pop("budget")
            out.pop("max_reasoning_tokens")
        else:
            out["queries_per_second"] = self.queries_per_second
        return out


def judged_only(collection: Collection) -> Collection:
    """The collection reduced to its judged queries (raises when none is judged)."""
    queries = collection.subset(collection.judged_query_ids())
    if not queries.queries:
        raise InvalidInputError(f"{collection.name}: no query has a relevant document; nothing to evaluate.")
    return queries


def search_r3_system_name(reasoning: bool, budget: int, label: str | None = None) -> str:
    """Row name: ``search-r3 (reasoning, 32 tokens)`` or, with a label, ``LABEL: reasoning (32 tokens)``."""
    if label is None:
        return f"search-r3 (reasoning, {budget} tokens)" if reasoning else "search-r3 (no reasoning)"
    return f"{label}: reasoning ({budget} tokens)" if reasoning else f"{label}: no reasoning"


def _row(
    system: str, queries: Collection, run: Run, metrics: Sequence[str], keep_runs: bool, **extra: Any
) -> EvalRow:
    return EvalRow(
        system=system,
        metrics=evaluate_run(queries.qrels, run, metrics),
        queries=len(queries.queries),
        run=run if keep_runs else None,
        **extra,
    )


def search_r3_rows(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    *,
    label: str | None = None,
    reasoning_modes: Sequence[bool] = (True, False),
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int = 100,
    max_reasoning_tokens: int | None = None,
    show_progress_bar: bool | None = None,
    keep_runs: bool = False,
) -> list[EvalRow]:
    """One row per reasoning mode for a search-r3 model; the corpus is encoded once.

    Args:
        label: Prefix naming the model in the rows (``LABEL: no reasoning``); ``None`` keeps the
            one-model names (``search-r3 (no reasoning)``).
        reasoning_modes: Which query modes to run, in table order.
        max_reasoning_tokens: Reasoning budget (default: the model's setting).
    """
    if not reasoning_modes:
        return []
    queries = judged_only(collection)
    start = time.perf_counter()
    _, doc_vectors = encode_corpus(embeddings, queries, show_progress_bar)
    corpus_seconds = time.perf_counter() - start
    budget = max_reasoning_tokens if max_reasoning_tokens is not None else embeddings.max_reasoning_tokens
    rows: list[EvalRow] = []
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
            _row(
                search_r3_system_name(reasoning, budget, label),
                queries,
                run,
                metrics,
                keep_runs,
                forced_fraction=float(np.mean(encoded.forced)) if reasoning else None,
                mean_reasoning_tokens=float(np.mean(encoded.generated_tokens)) if reasoning else None,
                seconds=elapsed,
                corpus_seconds=corpus_seconds,
            )
        )
    return rows


def parse_budgets(value: str | Sequence[int]) -> list[int]:
    """Reasoning budgets from ``"0,8,16"`` or a list: distinct, non-negative, in the order given.

    Raises:
        InvalidInputError: An empty list, a value that is not a whole number, a negative one or a
            repeated one.
    """
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    budgets: list[int] = []
    for item in items:
        text = str(item).strip()
        if not text.isdigit():
            raise InvalidInputError(
                f"budget {text!r} is not a whole number of tokens >= 0; write e.g. --budgets 0,8,16,32."
            )
        budget = int(text)
        if budget in budgets:
            raise InvalidInputError(f"budget {budget} is given twice; list each budget once.")
        budgets.append(budget)
    if not budgets:
        raise InvalidInputError("no budget given; write e.g. --budgets 0,8,16,32 (0: reasoning off).")
    return budgets


def budget_rows(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    budgets: Sequence[int],
    *,
    label: str | None = None,
    metrics: Sequence[str] = BUDGET_METRICS,
    k: int = 100,
    doc_cache: str | Path | None = None,
    repeats: int = 1,
    show_progress_bar: bool | None = None,
    keep_runs: bool = False,
) -> list[EvalRow]:
    """A reasoning-budget sweep: one dense row per budget, the corpus encoded once.

    Budget 0 embeds the query without reasoning; any other budget reasons (greedy) for at most
    that many tokens. Each row's ``seconds`` is the wall time of its queries (reasoning,
    embedding and ranking, after an untimed warm-up on two queries), so ``queries_per_second``
    compares budgets measured in one run; with ``repeats`` the budgets are timed round-robin
    that many times and each keeps its fastest round.

    Args:
        budgets: Reasoning budgets in table order (see `parse_budgets`).
        label: Prefix naming the model in the rows; ``None`` keeps the one-model names.
        doc_cache: Folder to keep the document vectors in between runs (see
            `cached_corpus_vectors`).
        repeats: Timed rounds per budget (the fastest counts); the metrics come from the first.

    Example:
        ```python
        rows = budget_rows(emb, collection, [0, 16, 64])
        print(format_budget_table(rows))
        ```
    """
    budgets = parse_budgets(budgets)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInputError(f"repeats must be a whole number >= 1, got {repeats!r}.")
    queries = judged_only(collection)
    start = time.perf_counter()
    doc_ids, doc_vectors = cached_corpus_vectors(embeddings, queries, doc_cache, show_progress_bar)
    corpus_seconds = time.perf_counter() - start
    query_ids = list(queries.queries)
    texts = [queries.queries[q] for q in query_ids]
    # Untimed warm-up of both paths, so the first row does not carry one-time costs.
    for budget in sorted({min(b, 2) for b in budgets}):
        embeddings.encode_queries(
            texts[:2],
            reasoning=budget > 0,
            max_reasoning_tokens=budget or None,
            show_progress_bar=False,
            use_cache=False,
        )
    # Round-robin over the budgets, so a burst of load on a shared machine hits every budget
    # alike; each budget keeps its fastest round. Greedy decoding: every round encodes the same.
    first: dict[int, QueryEncodings] = {}
    fastest: dict[int, float] = {}
    for _ in range(repeats):
        for budget in budgets:
            reasoning = budget > 0
            start = time.perf_counter()
            encoded = embeddings.encode_queries(
                texts,
                reasoning=reasoning,
                max_reasoning_tokens=budget if reasoning else None,
                show_progress_bar=show_progress_bar,
                use_cache=False,  # every budget is timed on real work
            )
            rank_by_vectors(query_ids, encoded.embeddings, doc_ids, doc_vectors, k)
            seconds = time.perf_counter() - start
            first.setdefault(budget, encoded)
            fastest[budget] = min(seconds, fastest.get(budget, float("inf")))
            logger.info("budget %d: %.1f s for %d queries", budget, seconds, len(texts))
    rows: list[EvalRow] = []
    for budget in budgets:
        encoded = first[budget]
        rows.append(
            _row(
                label or "search-r3",
                queries,
                rank_by_vectors(query_ids, encoded.embeddings, doc_ids, doc_vectors, k),
                metrics,
                keep_runs,
                forced_fraction=float(np.mean(encoded.forced)) if budget > 0 else None,
                mean_reasoning_tokens=float(np.mean(encoded.generated_tokens)),
                max_reasoning_tokens=max(encoded.generated_tokens, default=0),
                seconds=fastest[budget],
                corpus_seconds=corpus_seconds,
                budget=budget,
            )
        )
    return rows


def format_budget_table(rows: Sequence[EvalRow]) -> str:
    """A budget sweep as a markdown table: one line per model and budget, baselines last.

    Columns: system (the model's label), budget (0: reasoning off), each metric, forced share,
    reasoning tokens per query (mean / most), queries per second. Rows without a budget (BM25,
    sentence-transformers) show ``-`` in the budget columns.
    """
    if not rows:
        return "(no results)"
    metric_names = list(rows[0].metrics)
    header = ["system", "budget", *(display_name(m) for m in metric_names), "forced"]
    header += ["reasoning tokens (mean / most)", "queries/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|"]
    for row in rows:
        cells = [row.system, "-" if row.budget is None else str(row.budget)]
        cells += [f"{row.metrics.get(m, float('nan')):.4f}" for m in metric_names]
        cells.append("-" if row.forced_fraction is None else f"{row.forced_fraction:.0%}")
        if row.mean_reasoning_tokens is None:
            cells.append("-")
        else:
            most = "-" if row.max_reasoning_tokens is None else str(row.max_reasoning_tokens)
            cells.append(f"{row.mean_reasoning_tokens:.1f} / {most}")
        cells.append(f"{row.queries_per_second:.2f}" if row.seconds > 0 else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sentence_transformer_row(
    model: Any,
    collection: Collection,
    *,
    label: str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int = 100,
    show_progress_bar: bool | None = None,
    keep_runs: bool = False,
) -> EvalRow:
    """A ``sentence-transformers: LABEL`` baseline row (see `sentence_transformer_run`)."""
    queries = judged_only(collection)
    run, corpus_seconds, seconds = sentence_transformer_run(
        model, queries, k=k, show_progress_bar=show_progress_bar
    )
    return _row(
        f"sentence-transformers: {label}",
        queries,
        run,
        metrics,
        keep_runs,
        seconds=seconds,
        corpus_seconds=corpus_seconds,
    )


def bm25_row(
    collection: Collection, *, metrics: Sequence[str] = DEFAULT_METRICS, k: int = 100, keep_runs: bool = False
) -> EvalRow:
    """The ``BM25`` baseline row (index and queries timed together in ``seconds``)."""
    queries = judged_only(collection)
    start = time.perf_counter()
    run = bm25_run(queries, k=k)
    return _row("BM25", queries, run, metrics, keep_runs, seconds=time.perf_counter() - start)


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
    queries = judged_only(collection)
    rows = search_r3_rows(
        embeddings,
        queries,
        reasoning_modes=reasoning_modes,
        metrics=metrics,
        k=k,
        max_reasoning_tokens=max_reasoning_tokens,
        show_progress_bar=show_progress_bar,
        keep_runs=keep_runs,
    )
    if bm25:
        rows.append(bm25_row(queries, metrics=metrics, k=k, keep_runs=keep_runs))
    for name, run in (extra_runs or {}).items():
        rows.append(_row(name, queries, run, metrics, keep_runs))
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


# -- dense, sparse and hybrid rows through the Qdrant store ----------------------------------------
@dataclass(frozen=True)
class RetrievalSetup:
    """One way of ranking with the store: a mode and its fusion / sparse-query settings."""

    mode: str
    settings: HybridSettings

    def describe(self, reasoning: bool) -> str:
        """Row suffix, e.g. ``hybrid rrf k=61 w=1:1 + reasoning x0.5``."""
        s = self.settings
        expansion = f" + reasoning x{s.reasoning_weight:g}" if reasoning and s.expand else ""
        if self.mode == "dense":
            return "dense"
        if self.mode == "sparse":
            return "sparse" + expansion
        if s.fusion == "dbsf":
            return "hybrid dbsf" + expansion
        return f"hybrid rrf k={s.rrf_k} w={s.dense_weight:g}:{s.sparse_weight:g}" + expansion

    def needs_reasoning_text(self) -> bool:
        return self.mode != "dense" and self.settings.expand


def retrieval_setups(
    modes: Sequence[str],
    *,
    fusions: Sequence[str] = ("rrf", "dbsf"),
    rrf_weights: Sequence[tuple[float, float]] = ((2.0, 1.0),),
    rrf_ks: Sequence[int] = (61,),
    reasoning_weights: Sequence[float] = (0.25,),
    base: HybridSettings | None = None,
) -> list[RetrievalSetup]:
    """Every combination asked for, in table order: dense, sparse, then each hybrid fusion.

    Sparse and hybrid setups come without expansion and with each reasoning weight (expansion
    rows only apply to queries with reasoning on).
    """
    from search_r3.store import MODES, HybridSettings

    base = base or HybridSettings()
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode {unknown[0]!r}; use {', '.join(MODES)}.")
    expansions = [base.replace(expand=False)] + [
        base.replace(expand=True, reasoning_weight=w) for w in reasoning_weights
    ]
    setups: list[RetrievalSetup] = []
    if "dense" in modes:
        setups.append(RetrievalSetup("dense", base.replace(expand=False)))
    if "sparse" in modes:
        setups += [RetrievalSetup("sparse", e) for e in expansions]
    if "hybrid" in modes:
        for fusion in fusions:
            if fusion == "dbsf":
                setups += [RetrievalSetup("hybrid", e.replace(fusion="dbsf")) for e in expansions]
                continue
            for rrf_k in rrf_ks:
                for dense_w, sparse_w in rrf_weights:
                    setups += [
                        RetrievalSetup(
                            "hybrid",
                            e.replace(
                                fusion=fusion, rrf_k=rrf_k, dense_weight=dense_w, sparse_weight=sparse_w
                            ),
                        )
                        for e in expansions
                    ]
    return setups


def cached_corpus_vectors(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    cache_dir: str | Path | None = None,
    show_progress_bar: bool | None = None,
) -> tuple[list[str], np.ndarray]:
    """`encode_corpus`, reusing a ``.npy`` file in ``cache_dir`` made for the same model and texts.

    The file name is a hash of the model (path or Hub id, dtype, maximum length, prompt settings)
    and the document texts, so a changed model or corpus never reads stale vectors.
    """
    from search_r3.store import model_name_of

    ids, texts = indexable_documents(collection, warn=True)
    if cache_dir is None:
        return ids, embeddings.encode_documents(texts, show_progress_bar=show_progress_bar)
    key = hashlib.sha256()
    identity = [model_name_of(embeddings), str(embeddings.model.dtype), embeddings.max_length]
    key.update(json.dumps(identity + [repr(embeddings.settings)]).encode())
    for text in texts:
        key.update(text.encode("utf-8") + b"\0")
    path = Path(cache_dir).expanduser() / f"corpus-{key.hexdigest()[:24]}.npy"
    if path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(ids):
            logger.info("document vectors read from %s", path)
            return ids, vectors
    vectors = embeddings.encode_documents(texts, show_progress_bar=show_progress_bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return ids, vectors


@contextmanager
def corpus_store(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    doc_ids: Sequence[str],
    doc_vectors: np.ndarray,
    *,
    sparse_settings: Bm25Settings | None = None,
) -> Iterator[QdrantStore]:
    """A hybrid Qdrant store holding the corpus (dense vectors given, BM25 computed), while the block runs.

    The store is a folder on the default engine (embedded Qdrant, as ``search-r3 index`` makes), in a
    temporary directory that is removed when the block ends; its search index is built as
    `QdrantStore.index` builds it, so the rows rank as a user's store does.

    Example:
        ```python
        ids, vectors = encode_corpus(embeddings, collection)
        with corpus_store(embeddings, collection, ids, vectors) as store:
            print(store.search("wing lift", k=3).hits)
        ```
    """
    from search_r3.store import QdrantStore

    with (
        tempfile.TemporaryDirectory(prefix="search-r3-eval-") as folder,
        QdrantStore(
            embeddings, "eval", path=Path(folder) / "store", hybrid=True, sparse_settings=sparse_settings
        ) as store,
    ):
        for start in range(0, len(doc_ids), 256):
            batch = list(doc_ids[start : start + 256])
            store.add_vectors(
                doc_vectors[start : start + len(batch)], [collection.doc_text(d) for d in batch], batch
            )
        store.optimize()  # past the threshold, as index() does
        yield store


def store_run(
    store: QdrantStore,
    query_ids: Sequence[str],
    queries: Sequence[str],
    encoded: QueryEncodings,
    setup: RetrievalSetup,
    k: int,
) -> Run:
    """Rank the store for every query with ready query encodings (no model call).

    Each query goes through `QdrantStore.search_encoded`, the call `QdrantStore.search` makes
    after encoding, so the rows rank exactly as a user's searches do.
    """
    run: Run = {}
    for row, (qid, text) in enumerate(zip(query_ids, queries, strict=True)):
        result = store.search_encoded(
            text,
            encoded.embeddings[row],
            k,
            reasoning=encoded.reasoning[row] if encoded.reasoning else "",
            mode=setup.mode,
            settings=setup.settings,
        )
        run[qid] = {hit.id: hit.score for hit in result.hits}
    return run


def store_rows(
    embeddings: ReasoningEmbeddings,
    collection: Collection,
    setups: Sequence[RetrievalSetup],
    *,
    label: str | None = None,
    reasoning_modes: Sequence[bool] = (True, False),
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int = 100,
    max_reasoning_tokens: int | None = None,
    sparse_settings: Bm25Settings | None = None,
    doc_cache: str | Path | None = None,
    show_progress_bar: bool | None = None,
    keep_runs: bool = False,
) -> list[EvalRow]:
    """Rows for each reasoning mode x each setup, ranked by a Qdrant store (see `corpus_store`).

    The corpus is encoded once (or read from ``doc_cache``) and each query is encoded once per
    reasoning mode; every dense, sparse and hybrid setup is then ranked from those encodings by
    the same Query API calls `QdrantStore.search` makes. A sparse setup without expansion
    does not depend on reasoning, so it appears once (with the last reasoning mode).
    """
    if not reasoning_modes or not setups:
        return []
    queries = judged_only(collection)
    start = time.perf_counter()
    doc_ids, doc_vectors = cached_corpus_vectors(embeddings, queries, doc_cache, show_progress_bar)
    corpus_seconds = time.perf_counter() - start
    budget = max_reasoning_tokens if max_reasoning_tokens is not None else embeddings.max_reasoning_tokens
    query_ids = list(queries.queries)
    texts = [queries.queries[q] for q in query_ids]
    rows: list[EvalRow] = []
    with corpus_store(embeddings, queries, doc_ids, doc_vectors, sparse_settings=sparse_settings) as store:
        for position, reasoning in enumerate(reasoning_modes):
            last = position == len(reasoning_modes) - 1
            start = time.perf_counter()
            encoded = embeddings.encode_queries(
                texts, reasoning=reasoning, max_reasoning_tokens=budget, show_progress_bar=show_progress_bar
            )
            encode_seconds = time.perf_counter() - start
            base = search_r3_system_name(reasoning, budget, label)
            for setup in setups:
                if setup.needs_reasoning_text() and not reasoning:
                    continue  # nothing to expand with
                if setup.mode == "sparse" and not setup.settings.expand and not last:
                    continue  # the same for every reasoning mode: one row
                start = time.perf_counter()
                run = store_run(store, query_ids, texts, encoded, setup, k)
                seconds = time.perf_counter() - start
                uses_model = setup.mode != "sparse" or setup.settings.expand
                name = (
                    f"{base} · {setup.describe(reasoning)}"
                    if uses_model
                    else f"{label or 'search-r3'} · sparse"
                )
                rows.append(
                    _row(
                        name,
                        queries,
                        run,
                        metrics,
                        keep_runs,
                        forced_fraction=float(np.mean(encoded.forced)) if reasoning and uses_model else None,
                        mean_reasoning_tokens=float(np.mean(encoded.generated_tokens))
                        if reasoning and uses_model
                        else None,
                        seconds=seconds + (encode_seconds if uses_model else 0.0),
                        corpus_seconds=corpus_seconds,
                    )
                )
    return rows
