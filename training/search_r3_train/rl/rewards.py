"""Retrieval rewards: how good is the ranking one rollout's embedding produces?

Every reward scores one query embedding against the whole corpus: ``scores`` holds the cosine
similarity of the query to each document (the corpus vectors are L2-normalised) and
``relevant`` maps document indices to graded gains. Ranks are 1-based; a document shares its
rank with nothing that scores strictly higher (ties resolve in its favour).

The default is DCG over the ranking with the gain scaled by the continuous similarity
("DCG_scaled", method.md §6). nDCG@k, reciprocal rank and a margin reward are alternatives.
Add your own by subclassing `RetrievalReward` and decorating it with
`register_reward`, or name it as ``"package.module:ClassName"`` in the config.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from search_r3.errors import SearchR3Error


class UnknownRewardError(SearchR3Error, ValueError):
    """A reward name that is neither registered nor an importable ``module:Class`` path."""


def ranks_of(scores: torch.Tensor, doc_indices: torch.Tensor) -> torch.Tensor:
    """1-based rank of each of ``doc_indices`` in the descending order of ``scores``."""
    wanted = scores[doc_indices]
    return 1 + (scores.unsqueeze(0) > wanted.unsqueeze(1)).sum(dim=1)


def _relevant_tensors(
    relevant: Mapping[int, float], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    docs = torch.tensor(list(relevant.keys()), dtype=torch.long, device=device)
    gains = torch.tensor([float(g) for g in relevant.values()], dtype=torch.float32, device=device)
    return docs, gains


def ideal_dcg(gains: torch.Tensor, k: int | None) -> float:
    """DCG of the best possible ranking of ``gains`` (cut at depth ``k``)."""
    ordered = gains.sort(descending=True).values
    if k is not None:
        ordered = ordered[:k]
    discounts = torch.log2(torch.arange(2, len(ordered) + 2, dtype=torch.float32, device=gains.device))
    return float((ordered / discounts).sum())


class RetrievalReward(ABC):
    """Scores the ranking of one query embedding over the corpus.

    Subclasses implement `score`. Calling the object checks the inputs and returns NaN for
    a query with no relevant document (the trainer then leaves that rollout out of the
    advantage), so every subclass sees at least one relevant document.
    """

    #: Registry name (set by `register_reward`).
    name: ClassVar[str] = ""

    def __call__(self, scores: torch.Tensor, relevant: Mapping[int, float]) -> float:
        """Reward of one ranking.

        Args:
            scores: ``(num_docs,)`` cosine similarity of the query to every document.
            relevant: ``doc index -> gain`` (gain > 0) of the judged documents.
        """
        if scores.ndim != 1:
            raise ValueError(f"scores must be one row per query, got shape {tuple(scores.shape)}.")
        relevant = {int(d): float(g) for d, g in relevant.items() if g > 0}
        if not relevant:
            return math.nan
        bad = [d for d in relevant if not 0 <= d < scores.shape[0]]
        if bad:
            raise IndexError(f"relevant documents {bad[:5]} are outside the corpus of {scores.shape[0]}.")
        return float(self.score(scores.float(), relevant))

    @abstractmethod
    def score(self, scores: torch.Tensor, relevant: dict[int, float]) -> float:
        """The reward; ``relevant`` is non-empty and in range."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


REWARDS: dict[str, type[RetrievalReward]] = {}


def register_reward(name: str) -> Callable[[type[RetrievalReward]], type[RetrievalReward]]:
    """Class decorator: make a `RetrievalReward` available by ``name`` in configs."""

    def decorate(cls: type[RetrievalReward]) -> type[RetrievalReward]:
        if not (isinstance(cls, type) and issubclass(cls, RetrievalReward)):
            raise TypeError(f"{cls!r} is not a RetrievalReward subclass.")
        cls.name = name
        REWARDS[name] = cls
        return cls

    return decorate


def make_reward(name: str, **kwargs: Any) -> RetrievalReward:
    """Build a reward by registry name (``dcg_scaled``, ``ndcg``, ``rr``, ``margin``) or
    ``"package.module:ClassName"``. Keyword arguments the class does not take are dropped, so one
    config (e.g. ``k``) serves every reward."""
    cls = REWARDS.get(name)
    if cls is None and ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownRewardError(f"Cannot import reward {name!r}: {exc}.") from exc
        if not (isinstance(cls, type) and issubclass(cls, RetrievalReward)):
            raise UnknownRewardError(
                f"{name!r} is not a search_r3_train.rl.rewards.RetrievalReward subclass."
            )
    if cls is None:
        raise UnknownRewardError(
            f"Unknown reward {name!r}; choose one of {sorted(REWARDS)} or give 'package.module:ClassName' "
            "of a RetrievalReward subclass."
        )
    import inspect

    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


class _CutoffDCGReward(RetrievalReward):
    """DCG@k of the relevant documents over the ideal DCG; subclasses may scale each gain."""

    def __init__(self, k: int | None = 10):
        if k is not None and k < 1:
            raise ValueError("k must be >= 1 (or None for no cut-off).")
        self.k = k

    def score(self, scores: torch.Tensor, relevant: dict[int, float]) -> float:
        docs, gains = _relevant_tensors(relevant, scores.device)
        ranks = ranks_of(scores, docs).float()
        keep = ranks <= self.k if self.k is not None else torch.ones_like(ranks, dtype=torch.bool)
        dcg = (gains * self.gain_scale(scores, docs) / torch.log2(1 + ranks))[keep].sum()
        return float(dcg) / ideal_dcg(gains, self.k)

    def gain_scale(self, scores: torch.Tensor, docs: torch.Tensor) -> torch.Tensor | float:
        """Factor on each relevant document's gain (1: plain nDCG)."""
        return 1.0


@register_reward("dcg_scaled")
class DCGScaledReward(_CutoffDCGReward):
    """DCG of the relevant documents with each gain scaled by its similarity, over the ideal DCG.

    r = Σ_{d relevant, rank_d ≤ k} g_d · (1 + cos(q, d)) / 2 / log2(1 + rank_d)  /  IDCG@k.
    In [0, 1] (1 only if the ideal ranking holds and every relevant cosine is 1), so it keeps a
    gradient of signal after the positives reach rank 1, unlike plain nDCG.
    """

    def gain_scale(self, scores: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        return (1 + scores[docs]) / 2


@register_reward("ndcg")
class NDCGReward(_CutoffDCGReward):
    """nDCG@k with linear gains (as trec_eval's ``ndcg_cut``)."""


@register_reward("rr")
class ReciprocalRankReward(RetrievalReward):
    """1 / rank of the best-ranked relevant document (0 if it is below depth ``k``)."""

    def __init__(self, k: int | None = None):
        if k is not None and k < 1:
            raise ValueError("k must be >= 1 (or None for no cut-off).")
        self.k = k

    def score(self, scores: torch.Tensor, relevant: dict[int, float]) -> float:
        docs, _ = _relevant_tensors(relevant, scores.device)
        best = int(ranks_of(scores, docs).min())
        if self.k is not None and best > self.k:
            return 0.0
        return 1.0 / best


@register_reward("margin")
class MarginReward(RetrievalReward):
    """Cosine of the best relevant document minus that of the best non-relevant one, in [-1, 1].

    Does not saturate at rank 1: it keeps rewarding a wider gap.
    """

    def score(self, scores: torch.Tensor, relevant: dict[int, float]) -> float:
        docs, _ = _relevant_tensors(relevant, scores.device)
        others = scores.clone()
        others[docs] = -math.inf
        best_other = others.max() if scores.shape[0] > len(docs) else torch.tensor(-1.0)
        return float((scores[docs].max() - best_other) / 2)
