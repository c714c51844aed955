"""A reward of your own for stage 2: subclass RetrievalReward and register it by name.

Then: search-r3-train rl --config rl.yaml --reward_name top3_hit
(or --reward_name my_package.rewards:Top3Hit without registering).
Run:  python docs/examples/rl_custom_reward.py      (needs: pip install -e training)
"""

import torch

from search_r3_train.rl.rewards import RetrievalReward, make_reward, ranks_of, register_reward


@register_reward("top3_hit")
class Top3Hit(RetrievalReward):
    """1 if a relevant document is among the three best-ranked, else 0."""

    def __init__(self, k: int = 3):
        self.k = k

    def score(self, scores: torch.Tensor, relevant: dict[int, float]) -> float:
        ranks = ranks_of(scores, torch.tensor(list(relevant)))
        return float(ranks.min() <= self.k)


# One rollout's embedding scored against a corpus of five documents (cosine similarities);
# documents 1 (gain 2) and 4 (gain 1) are relevant.
scores = torch.tensor([0.9, 0.7, 0.2, 0.1, 0.6])
relevant = {1: 2.0, 4: 1.0}
for name in ("dcg_scaled", "ndcg", "rr", "margin", "top3_hit"):
    reward = make_reward(name, k=10)  # keywords a reward does not take are dropped
    print(f"{name:>10}: {reward(scores, relevant):.4f}")
