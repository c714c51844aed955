"""Stage 2 of search-r3 training: GRPO with a retrieval reward (method.md §6–7).

The pieces, each usable on its own:

* `rl.rewards`: ranking rewards (DCG_scaled, nDCG@k, RR, margin) and a registry.
* `rl.environment`: cached corpus vectors with selective local refresh.
* `rl.policy`: embeddings read from the policy through the core's code.
* `rl.reward_function`: the reward object ``trl.GRPOTrainer`` calls.
* `rl.trainer`: the thin ``GRPOTrainer`` subclass.
* `rl.build` / `rl.cli`: ``search-r3-train rl``.
"""

from search_r3_train.rl.environment import (
    EnvironmentConfig,
    NaiveEnvironment,
    RetrievalEnvironment,
    RetrievalEnvironmentError,
    StepStats,
    make_environment,
)
from search_r3_train.rl.rewards import (
    REWARDS,
    DCGScaledReward,
    MarginReward,
    NDCGReward,
    ReciprocalRankReward,
    RetrievalReward,
    make_reward,
    register_reward,
)

__all__ = [
    "REWARDS",
    "DCGScaledReward",
    "EnvironmentConfig",
    "MarginReward",
    "NDCGReward",
    "NaiveEnvironment",
    "ReciprocalRankReward",
    "RetrievalEnvironment",
    "RetrievalEnvironmentError",
    "RetrievalReward",
    "StepStats",
    "make_environment",
    "make_reward",
    "register_reward",
]
