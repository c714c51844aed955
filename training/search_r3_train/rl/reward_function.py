"""The reward TRL calls: embed each rollout, refresh the environment, score the ranking.

TRL reward functions see prompts and completion ids, not hidden states, so this callable holds
the policy (through `PolicyEncoder`) and runs one extra no-grad forward of
prompt + completion to read each rollout's embedding at the embed token.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from search_r3.decoding import closing_end
from search_r3.prompts import PromptBuilder
from search_r3_train.rl.data import RLData
from search_r3_train.rl.environment import RetrievalEnvironment
from search_r3_train.rl.policy import PolicyEncoder
from search_r3_train.rl.rewards import RetrievalReward

logger = logging.getLogger(__name__)

MISSING_TOKEN_MODES = ("penalty", "forced")


@dataclass
class ScoredBatch:
    """What the last call scored, in the order TRL passed the rollouts (for the contrastive term)."""

    rewards: list[float]
    emitted: list[bool]
    scored: list[bool]
    positives: list[int]  # corpus index of each rollout's best relevant document (-1: not scored)
    negatives: list[list[int]]  # top-ranked non-relevant corpus indices per rollout


@dataclass
class RolloutCounters:
    """Running totals over the run (emitted-token fraction, encoder work)."""

    rollouts: int = 0
    emitted: int = 0
    calls: int = 0
    rewards: list[float] = field(default_factory=list)

    @property
    def emitted_fraction(self) -> float:
        return self.emitted / self.rollouts if self.rollouts else 0.0


class RetrievalRewardFunction:
    """Callable reward for ``trl.GRPOTrainer``: retrieval quality of each rollout's embedding.

    A rollout that ends in the embed token is embedded by one no-grad forward of its prompt and
    completion. A rollout that never emitted the token gets ``missing_token_penalty`` (mode
    ``"penalty"``), or is closed as inference closes it (forced closing text + token), scored,
    and the penalty added (mode ``"forced"``). Either way it is counted.

    Args:
        data: Corpus, queries and judgements.
        reward: Ranking reward (e.g. ``make_reward("dcg_scaled", k=10)``).
        environment: Cached, locally refreshed corpus vectors.
        encoder: Reads embeddings from the current policy.
        prompts: Builds the same reasoning prompts the trainer generates from.
        missing_token_mode: ``"penalty"`` or ``"forced"``.
        missing_token_penalty: Reward (``penalty``) or reward offset (``forced``) of a rollout
            without the embed token.
        contrastive_negatives: Non-relevant documents kept per rollout for the contrastive term.
    """

    __name__ = "retrieval"  # TRL logs rewards under this name

    def __init__(
        self,
        data: RLData,
        reward: RetrievalReward,
        environment: RetrievalEnvironment,
        encoder: PolicyEncoder,
        prompts: PromptBuilder,
        missing_token_mode: str = "penalty",
        missing_token_penalty: float = 0.0,
        contrastive_negatives: int = 7,
    ):
        if missing_token_mode not in MISSING_TOKEN_MODES:
            raise ValueError(
                f"missing_token_mode must be one of {MISSING_TOKEN_MODES}, got {missing_token_mode!r}."
            )
        self.data = data
        self.reward = reward
        self.environment = environment
        self.encoder = encoder
        self.prompts = prompts
        self.embed_id = prompts.embed_id
        self.closing = prompts.closing_ids[:-1]  # the closing text's ids, without the token
        self.missing_token_mode = missing_token_mode
        self.missing_token_penalty = float(missing_token_penalty)
        self.contrastive_negatives = contrastive_negatives
        self.counters = RolloutCounters()
        self.last: ScoredBatch | None = None
        self._prompt_cache: dict[str, list[int]] = {}

    def prompt_ids(self, query: str) -> list[int]:
        """Reasoning prompt ids of a query (what the trainer generates from)."""
        ids = self._prompt_cache.get(query)
        if ids is None:
            ids = self.prompts.reasoning_prompt_ids(query)
            self._prompt_cache[query] = ids
        return ids

    def rollout_sequence(self, query: str, completion: Sequence[int]) -> list[int]:
        """Ids whose embed-token state is the rollout's embedding.

        As in inference, a rollout that wrote the closing text ends there with the token; one
        without either is closed as a forced row: an end-of-turn token is dropped, the closing
        text and the token are appended.
        """
        completion = list(completion)
        if completion and completion[-1] == self.embed_id:
            return self.prompt_ids(query) + completion
        end = closing_end(completion, self.closing)
        if end is not None:
            return self.prompt_ids(query) + completion[:end] + [self.embed_id]
        if completion and completion[-1] in self._end_ids():
            completion = completion[:-1]
        return self.prompt_ids(query) + completion + list(self.prompts.forced_ids)

    def ends_turn(self, completion: Sequence[int]) -> bool:
        """True when the rollout emitted the embed token or wrote the closing text (inference's rule)."""
        completion = list(completion)
        return (bool(completion) and completion[-1] == self.embed_id) or closing_end(
            completion, self.closing
        ) is not None

    def _end_ids(self) -> set[int]:
        tokenizer = self.prompts.tokenizer
        ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        return {int(e) for e in ends if e is not None}

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]],
        query_id: Sequence[str],
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float]:
        n = len(completion_ids)
        if not (len(prompts) == len(query_id) == n):
            raise ValueError("prompts, completion_ids and query_id must have one entry per rollout.")
        emitted = [self.ends_turn(ids) for ids in completion_ids]
        scored = [e or self.missing_token_mode == "forced" for e in emitted]
        rows = [i for i in range(n) if scored[i]]
        # Every rollout is embedded, scored or not, so each rank runs the same number of forward
        # passes per call (DeepSpeed ZeRO-3 gathers parameters collectively inside each forward).
        sequences = [self.rollout_sequence(p, ids) for p, ids in zip(prompts, completion_ids, strict=True)]
        queries = self.encoder.embed_ids(sequences)[rows]
        relevant = [self._relevant(query_id[i]) for i in rows]
        # Every rank calls step() (even with no scored rollout): it exchanges the rows to refresh.
        stats = self.environment.step(queries, [list(r) for r in relevant])
        rewards = [self.missing_token_penalty if self.missing_token_mode == "penalty" else math.nan] * n
        positives, negatives = [-1] * n, [[] for _ in range(n)]
        if rows:
            scores = self.environment.scores(queries)
            for row, i in enumerate(rows):
                value = self.reward(scores[row], relevant[row])
                if not emitted[i]:
                    value += self.missing_token_penalty
                rewards[i] = value
                positives[i], negatives[i] = self._contrastive_targets(scores[row], relevant[row])
        self.last = ScoredBatch(rewards, emitted, scored, positives, negatives)
        self.counters.rollouts += n
        self.counters.emitted += sum(emitted)
        self.counters.calls += 1
        self.counters.rewards.extend(r for r in rewards if not math.isnan(r))
        if log_metric is not None:
            log_metric("retrieval/emitted_fraction", sum(emitted) / max(n, 1))
            log_metric("env/rows_encoded", float(stats.rows_encoded))
            log_metric("env/encoded_fraction", stats.encoded_fraction)
            log_metric("env/full_refresh", float(stats.full_refresh))
            log_metric("env/staleness_mean", stats.staleness_mean)
            log_metric("env/staleness_max", float(stats.staleness_max))
            if stats.drift is not None:
                log_metric("env/drift", stats.drift)
        return rewards

    def _relevant(self, query_id: str) -> dict[int, float]:
        judged = self.data.qrels.get(str(query_id))
        if judged is None:
            raise KeyError(f"Query {query_id!r} has no judgements in the RL data.")
        return judged

    def _contrastive_targets(self, scores: torch.Tensor, relevant: dict[int, float]) -> tuple[int, list[int]]:
        # positive: the most relevant document (highest gain, then highest score)
        positive = max(relevant, key=lambda d: (relevant[d], float(scores[d])))
        if self.contrastive_negatives <= 0:
            return positive, []
        depth = min(self.contrastive_negatives + len(relevant), scores.shape[0])
        top = scores.topk(depth).indices.tolist()
        return positive, [d for d in top if d not in relevant][: self.contrastive_negatives]
