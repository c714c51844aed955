"""The retrieval environment of stage 2: cached corpus vectors that are refreshed locally.

The policy changes the embedding function at every step, so cached document vectors go stale;
re-encoding the whole corpus per step is what makes naive RL for embedders unaffordable. This
module keeps (method.md §7):

1. the corpus vectors encoded once with the starting model, a version stamp per row (the step
   that last encoded it) and a k-nearest-neighbour graph over the documents;
2. per step, a search of the cached vectors with the rollouts' query embeddings (top-K);
3. a re-encode, with the current policy, of only the affected region: the retrieved top-K, the
   relevant documents and their graph neighbours, whose graph rows are then re-linked;
4. a bound on staleness: the least recently encoded rows within a per-step budget, and the whole
   corpus every N steps or when the drift measured on a fixed probe sample passes a threshold.

Rewards are then scored on the refreshed vectors (`RetrievalEnvironment.scores`).
`NaiveEnvironment` re-encodes everything each step, for comparison.

Under several processes every rank holds the same cache: the rows each rank wants refreshed are
gathered and every rank re-encodes their union, so the caches (and the number of forward passes
per rank) stay identical.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from search_r3.errors import SearchR3Error

logger = logging.getLogger(__name__)

#: Encodes documents (by corpus index) with the current policy: ``(len(indices), dim)`` vectors.
DocumentEncoder = Callable[[Sequence[int]], torch.Tensor]


class RetrievalEnvironmentError(SearchR3Error, ValueError):
    """The environment was configured or called inconsistently."""


@dataclass
class EnvironmentConfig:
    """How the cached corpus is kept fresh.

    Attributes:
        top_k: Documents retrieved per query embedding; these are refreshed every step.
        graph_k: Neighbours stored per document in the kNN graph.
        refresh_neighbours: Of each retrieved or relevant document, how many of its nearest
            graph neighbours are refreshed too (0: none).
        staleness_budget: Extra rows refreshed per step, least recently encoded first: a
            fraction of the corpus if below 1, else a row count.
        full_refresh_every: Re-encode the whole corpus every this many steps (0: never).
        drift_threshold: Re-encode the whole corpus when the probe drift (1 - mean cosine of the
            probe documents now vs. at the last full refresh) exceeds this (0: never).
        drift_check_every: Measure the drift every this many steps.
        probe_size: Documents in the fixed drift probe sample.
        seed: Seed of the probe sample.
    """

    top_k: int = 20
    graph_k: int = 8
    refresh_neighbours: int = 2
    staleness_budget: float = 0.005
    full_refresh_every: int = 0
    drift_threshold: float = 0.15
    drift_check_every: int = 10
    probe_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise RetrievalEnvironmentError("env top_k must be >= 1.")
        if self.graph_k < 0 or self.refresh_neighbours < 0:
            raise RetrievalEnvironmentError("env graph_k and refresh_neighbours must be >= 0.")
        if self.refresh_neighbours > self.graph_k:
            raise RetrievalEnvironmentError(
                f"env refresh_neighbours ({self.refresh_neighbours}) cannot exceed graph_k ({self.graph_k})."
            )
        if self.staleness_budget < 0 or self.full_refresh_every < 0 or self.drift_threshold < 0:
            raise RetrievalEnvironmentError(
                "env staleness_budget, full_refresh_every and drift_threshold must be >= 0."
            )
        if self.drift_check_every < 1:
            raise RetrievalEnvironmentError("env drift_check_every must be >= 1.")


@dataclass
class StepStats:
    """What one environment step did (logged by the trainer)."""

    step: int
    rows_encoded: int
    num_docs: int
    full_refresh: bool
    reason: str = ""
    drift: float | None = None
    staleness_mean: float = 0.0
    staleness_max: int = 0
    breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def encoded_fraction(self) -> float:
        return self.rows_encoded / max(self.num_docs, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "encoded_fraction": self.encoded_fraction}


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _gather_objects(value: object) -> list[object]:
    """``value`` from every rank (just ``[value]`` without a process group)."""
    if _world() == 1:
        return [value]
    out: list[object] = [None] * _world()
    dist.all_gather_object(out, value)
    return out


class RetrievalEnvironment:
    """Cached corpus vectors with version stamps, a kNN graph and selective local refresh.

    Args:
        encode: Encodes documents by corpus index with the *current* policy (called lazily, so a
            policy restored from a checkpoint is the one that encodes the corpus first).
        num_docs: Corpus size.
        config: Refresh policy.

    Example:
        ```python
        env = RetrievalEnvironment(encode, num_docs=len(corpus), config=EnvironmentConfig())
        stats = env.step(query_vectors, relevant=[[3, 17], [5]])
        scores = env.scores(query_vectors)   # (queries, num_docs) cosine on refreshed rows
        ```
    """

    def __init__(self, encode: DocumentEncoder, num_docs: int, config: EnvironmentConfig | None = None):
        if num_docs < 1:
            raise RetrievalEnvironmentError(
                "The corpus is empty: the environment needs at least one document."
            )
        self.encode = encode
        self.num_docs = int(num_docs)
        self.config = config or EnvironmentConfig()
        self.vectors: torch.Tensor | None = None  # (num_docs, dim)
        self.versions = torch.zeros(self.num_docs, dtype=torch.long)  # step that last encoded each row
        self.graph = torch.zeros((self.num_docs, 0), dtype=torch.long)  # (num_docs, graph_k) neighbours
        self.step_count = 0
        generator = torch.Generator().manual_seed(self.config.seed)
        probe = min(self.config.probe_size, self.num_docs)
        self.probe = torch.randperm(self.num_docs, generator=generator)[:probe]
        self._probe_reference: torch.Tensor | None = None
        self.total_rows_encoded = 0
        self.full_refreshes = 0
        self.history: list[StepStats] = []

    # -- state ----------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self.vectors is not None

    def staleness(self) -> torch.Tensor:
        """Steps since each row was last encoded."""
        return self.step_count - self.versions

    def _encode(self, indices: torch.Tensor) -> torch.Tensor:
        vectors = self.encode(indices.tolist()).detach().float()
        if vectors.shape[0] != len(indices):
            raise RetrievalEnvironmentError(
                f"The document encoder returned {vectors.shape[0]} vectors for {len(indices)} documents."
            )
        return F.normalize(vectors, dim=-1)

    def _write(self, indices: torch.Tensor, vectors: torch.Tensor) -> None:
        assert self.vectors is not None
        self.vectors[indices.to(self.vectors.device)] = vectors.to(self.vectors.device)
        self.versions[indices.cpu()] = self.step_count

    # -- graph ----------------------------------------------------------------------------------
    def _neighbours_of(self, rows: torch.Tensor, block: int = 1024) -> torch.Tensor:
        """The ``graph_k`` most similar other documents of each row (exact, blockwise cosine)."""
        assert self.vectors is not None
        k = min(self.config.graph_k, self.num_docs - 1)
        if k <= 0:
            return torch.zeros((len(rows), 0), dtype=torch.long)
        out = []
        for start in range(0, len(rows), block):
            chunk = rows[start : start + block].to(self.vectors.device)
            sims = self.vectors[chunk] @ self.vectors.T
            sims[torch.arange(len(chunk), device=sims.device), chunk] = -float("inf")  # not its own neighbour
            out.append(sims.topk(k, dim=1).indices.cpu())
        return torch.cat(out)

    def _relink(self, rows: torch.Tensor) -> None:
        if self.config.graph_k == 0 or len(rows) == 0:
            return
        if self.graph.shape[1] == 0:
            self.graph = self._neighbours_of(torch.arange(self.num_docs))
        else:
            self.graph[rows.cpu()] = self._neighbours_of(rows)

    # -- refresh --------------------------------------------------------------------------------
    def refresh_all(self, rebuild_graph: bool = True) -> None:
        """Re-encode every document, rebuild the graph and reset the drift reference."""
        everything = torch.arange(self.num_docs)
        vectors = self._encode(everything)
        if self.vectors is None:
            self.vectors = vectors.clone()
        self._write(everything, vectors)
        if rebuild_graph:
            self.graph = self._neighbours_of(everything)
        self._probe_reference = self.vectors[self.probe.to(self.vectors.device)].clone()
        self.full_refreshes += 1
        self.total_rows_encoded += self.num_docs

    def refresh(self, rows: Iterable[int] | torch.Tensor) -> int:
        """Re-encode ``rows`` with the current policy, write them back and re-link their edges."""
        rows = torch.as_tensor(rows, dtype=torch.long).unique()
        if len(rows) == 0:
            return 0
        self._write(rows, self._encode(rows))
        self._relink(rows)
        self.total_rows_encoded += len(rows)
        return len(rows)

    def measure_drift(self) -> float:
        """1 - mean cosine between the probe documents encoded now and at the last full refresh.

        The fresh probe vectors are written back, so the measurement is not wasted work.
        """
        assert self._probe_reference is not None
        fresh = self._encode(self.probe)
        self._write(self.probe, fresh)
        self.total_rows_encoded += len(self.probe)
        cosine = (fresh.to(self._probe_reference.device) * self._probe_reference).sum(dim=1)
        return float(1 - cosine.mean())

    def search(self, queries: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Indices of the top-``k`` cached documents of each query: ``(queries, k)``."""
        assert self.vectors is not None
        k = min(k or self.config.top_k, self.num_docs)
        return self.scores(queries).topk(k, dim=1).indices.cpu()

    def scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Cosine of each query to every cached document: ``(queries, num_docs)``."""
        if self.vectors is None:
            raise RetrievalEnvironmentError(
                "The environment has no vectors yet: call step() (or refresh_all()) first."
            )
        queries = F.normalize(queries.detach().float().to(self.vectors.device), dim=-1)
        return queries @ self.vectors.T

    def _budget_rows(self) -> int:
        budget = self.config.staleness_budget
        return round(budget * self.num_docs) if budget < 1 else int(budget)

    def affected_rows(
        self, queries: torch.Tensor, relevant: Sequence[Iterable[int]]
    ) -> dict[str, torch.Tensor]:
        """The region one step refreshes: retrieved top-K, relevant documents, their neighbours."""
        retrieved = self.search(queries).flatten() if len(queries) else torch.zeros(0, dtype=torch.long)
        judged = [int(d) for docs in relevant for d in docs]
        bad = [d for d in judged if not 0 <= d < self.num_docs]
        if bad:
            raise RetrievalEnvironmentError(
                f"Relevant documents {bad[:5]} are outside the corpus of {self.num_docs}."
            )
        seeds = torch.cat([retrieved, torch.tensor(judged, dtype=torch.long)]).unique()
        n = self.config.refresh_neighbours
        neighbours = self.graph[seeds, :n].flatten() if n and self.graph.shape[1] else seeds[:0]
        return {"retrieved": retrieved.unique(), "seeds": seeds, "neighbours": neighbours.unique()}

    def step(self, queries: torch.Tensor, relevant: Sequence[Iterable[int]]) -> StepStats:
        """One RL step: refresh what these rollouts will be scored on, under the staleness rules.

        Args:
            queries: ``(n, dim)`` query embeddings of the rollouts this rank scores (may be empty).
            relevant: For each query, the corpus indices of its relevant documents.
        """
        if len(queries) != len(relevant):
            raise RetrievalEnvironmentError(
                f"{len(queries)} query vectors but {len(relevant)} relevant lists."
            )
        if not self.initialized:  # lazily, with the policy the trainer holds when it starts (or resumes)
            self.refresh_all()
            stats = StepStats(self.step_count, self.num_docs, self.num_docs, True, "initial")
            stats.breakdown = {"full": self.num_docs}
            self.history.append(stats)
            return stats
        self.step_count += 1
        cfg = self.config
        before = self.total_rows_encoded
        drift = None
        if cfg.drift_threshold > 0 and self.step_count % cfg.drift_check_every == 0:
            drift = self.measure_drift()
        region = self.affected_rows(queries, relevant)
        wanted = torch.cat([region["seeds"], region["neighbours"]]).unique()
        # One exchange: every rank learns the others' rows and drift, so all take the same branch.
        gathered = _gather_objects((wanted.tolist(), drift))
        wanted = torch.tensor(sorted({d for rows, _ in gathered for d in rows}), dtype=torch.long)
        drifts = [d for _, d in gathered if d is not None]
        drift = max(drifts) if drifts else None

        full, reason = False, ""
        if cfg.full_refresh_every and self.step_count % cfg.full_refresh_every == 0:
            full, reason = True, f"every {cfg.full_refresh_every} steps"
        elif drift is not None and drift > cfg.drift_threshold:
            full, reason = True, f"drift {drift:.4f} > {cfg.drift_threshold}"
        breakdown: dict[str, int] = {}
        if full:
            self.refresh_all()
            breakdown["full"] = self.num_docs
        else:
            budget = self._budget_rows()
            stale: torch.Tensor = wanted[:0]
            if budget:
                candidates = torch.ones(self.num_docs, dtype=torch.bool)
                candidates[wanted] = False
                order = torch.argsort(self.versions, stable=True)  # oldest first, ties by index
                stale = order[candidates[order]][:budget]
            breakdown = {"affected": len(wanted), "stale": len(stale)}
            self.refresh(torch.cat([wanted, stale]))
        if drift is not None:
            breakdown["probe"] = len(self.probe)
        staleness = self.staleness()
        stats = StepStats(
            step=self.step_count,
            rows_encoded=self.total_rows_encoded - before,
            num_docs=self.num_docs,
            full_refresh=full,
            reason=reason,
            drift=drift,
            staleness_mean=float(staleness.float().mean()),
            staleness_max=int(staleness.max()),
            breakdown=breakdown,
        )
        self.history.append(stats)
        if full:
            logger.info("Environment step %d: full refresh (%s).", self.step_count, reason)
        return stats


class NaiveEnvironment(RetrievalEnvironment):
    """Re-encodes the whole corpus at every step: the baseline the local refresh is measured against."""

    def step(self, queries: torch.Tensor, relevant: Sequence[Iterable[int]]) -> StepStats:
        if len(queries) != len(relevant):
            raise RetrievalEnvironmentError(
                f"{len(queries)} query vectors but {len(relevant)} relevant lists."
            )
        if self.initialized:
            self.step_count += 1
        self.refresh_all(rebuild_graph=False)  # nothing here reads the graph
        stats = StepStats(self.step_count, self.num_docs, self.num_docs, True, "naive")
        stats.breakdown = {"full": self.num_docs}
        self.history.append(stats)
        return stats


def make_environment(
    mode: str, encode: DocumentEncoder, num_docs: int, config: EnvironmentConfig | None = None
) -> RetrievalEnvironment:
    """``"local"`` (selective refresh) or ``"naive"`` (re-encode everything each step)."""
    kinds = {"local": RetrievalEnvironment, "naive": NaiveEnvironment}
    if mode not in kinds:
        raise RetrievalEnvironmentError(f"Unknown environment mode {mode!r}; choose 'local' or 'naive'.")
    return kinds[mode](encode, num_docs, config)
