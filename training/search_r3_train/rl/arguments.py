"""Stage-2 settings: the reward and the environment (model, data and GRPO settings are shared).

``search-r3-train rl`` parses ``ModelArguments`` and ``DataArguments`` (shared with ``sft``),
`RewardArguments`, `EnvironmentArguments` and ``trl.GRPOConfig`` from one flat YAML
file plus command-line overrides; every field name is unique across them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search_r3_train.rl.environment import EnvironmentConfig


@dataclass
class RLDataArguments:
    """Optional caps on the RL data (the collection itself comes from ``train_file``)."""

    rl_max_queries: int | None = field(
        default=None,
        metadata={
            "help": "train on at most this many queries of the split (a fixed random sample; None: all)."
        },
    )
    rl_max_docs: int | None = field(
        default=None,
        metadata={
            "help": "rank over at most this many documents: every judged document of the training queries "
            "plus a fixed random sample of the others (a cheaper proxy on a large corpus; None: all)."
        },
    )


@dataclass
class RewardArguments:
    """How a rollout is scored."""

    reward_name: str = field(
        default="dcg_scaled",
        metadata={
            "help": "ranking reward: dcg_scaled (DCG with similarity-scaled gains, method.md §6), ndcg, rr "
            "(reciprocal rank), margin, or 'package.module:ClassName' of your own RetrievalReward."
        },
    )
    reward_k: int | None = field(
        default=10, metadata={"help": "cut-off depth of the reward (None: no cut-off)."}
    )
    missing_token_mode: str = field(
        default="penalty",
        metadata={
            "help": "a rollout that never emits the embed token: 'penalty' (reward = "
            "missing_token_penalty) or 'forced' (closed with the closing text + token as inference "
            "does, scored, penalty added)."
        },
    )
    missing_token_penalty: float = field(
        default=0.0,
        metadata={"help": "reward (or reward offset, mode 'forced') of a rollout without the token."},
    )
    rl_contrastive_weight: float = field(
        default=0.0,
        metadata={"help": "weight of the optional InfoNCE term on the rollouts' embeddings (0: off)."},
    )
    rl_contrastive_temperature: float = field(default=0.05, metadata={"help": "temperature of that term."})
    rl_contrastive_negatives: int = field(
        default=7, metadata={"help": "top-ranked non-relevant documents per rollout in that term."}
    )
    rl_encode_batch_size: int = field(
        default=32, metadata={"help": "sequences per forward pass when encoding documents and rollouts."}
    )


@dataclass
class EnvironmentArguments:
    """How the cached corpus vectors are refreshed (method.md §7); see ``EnvironmentConfig``."""

    env_mode: str = field(
        default="local",
        metadata={"help": "'local' (selective refresh) or 'naive' (re-encode the whole corpus every step)."},
    )
    env_top_k: int = field(default=20, metadata={"help": "documents retrieved and refreshed per rollout."})
    env_graph_k: int = field(default=8, metadata={"help": "neighbours per document in the kNN graph."})
    env_refresh_neighbours: int = field(
        default=2, metadata={"help": "graph neighbours refreshed with each retrieved or relevant document."}
    )
    env_staleness_budget: float = field(
        default=0.005,
        metadata={
            "help": "least recently encoded rows refreshed per step: fraction of the corpus (<1) or count."
        },
    )
    env_full_refresh_every: int = field(
        default=0, metadata={"help": "re-encode the whole corpus every N steps (0: only on drift)."}
    )
    env_drift_threshold: float = field(
        default=0.15,
        metadata={
            "help": "full refresh when 1 - mean cosine of the probe documents since the last one "
            "exceeds this."
        },
    )
    env_drift_check_every: int = field(
        default=10, metadata={"help": "measure the probe drift every N steps."}
    )
    env_probe_size: int = field(default=32, metadata={"help": "documents in the drift probe sample."})

    def config(self, seed: int = 0) -> EnvironmentConfig:
        return EnvironmentConfig(
            top_k=self.env_top_k,
            graph_k=self.env_graph_k,
            refresh_neighbours=self.env_refresh_neighbours,
            staleness_budget=self.env_staleness_budget,
            full_refresh_every=self.env_full_refresh_every,
            drift_threshold=self.env_drift_threshold,
            drift_check_every=self.env_drift_check_every,
            probe_size=self.env_probe_size,
            seed=seed,
        )
