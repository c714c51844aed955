"""The RL retrieval environment: cached corpus vectors refreshed locally as the policy changes.

A stand-in policy (random document vectors that drift a little every step) shows what the
environment re-encodes per step, against the naive environment that re-encodes everything.
In training, the encoder is the policy model itself (search-r3-train rl builds it).
Run:  python docs/examples/rl_environment.py      (needs: pip install -e training)
"""

import torch

from search_r3_train.rl.environment import EnvironmentConfig, make_environment
from search_r3_train.rl.rewards import make_reward

NUM_DOCS, DIM, STEPS, QUERIES = 5000, 32, 10, 4
generator = torch.Generator().manual_seed(0)
base = torch.randn(NUM_DOCS, DIM, generator=generator)
drift = torch.randn(NUM_DOCS, DIM, generator=generator)
policy_step = 0  # the "policy" changes the embedding function a little at every step


def encode(indices):
    """Document vectors under the current policy, by corpus index."""
    return base[indices] + 0.01 * policy_step * drift[indices]


config = EnvironmentConfig(
    top_k=10,  # retrieved per query: refreshed every step
    graph_k=8,  # kNN graph over the documents
    refresh_neighbours=2,  # graph neighbours refreshed with each retrieved or relevant document
    staleness_budget=0.01,  # plus the 1% least recently encoded rows
    full_refresh_every=0,  # no periodic full refresh ...
    drift_threshold=0.05,  # ... but one when the measured drift passes 5%
)
local = make_environment("local", encode, NUM_DOCS, config)
naive = make_environment("naive", encode, NUM_DOCS, config)

for step in range(STEPS + 1):
    policy_step = step
    relevant = [[int(i)] for i in torch.randint(NUM_DOCS, (QUERIES,), generator=generator)]
    queries = torch.stack([encode([r[0]])[0] for r in relevant]) + 0.5 * torch.randn(QUERIES, DIM)
    local_stats = local.step(queries, relevant)
    naive.step(queries, relevant)
    print(
        f"step {local_stats.step:2d}: re-encoded {local_stats.rows_encoded:5d} of {NUM_DOCS} rows "
        f"({local_stats.encoded_fraction:6.1%}) {local_stats.breakdown}"
    )

# Rewards are scored on the refreshed cache: they agree with those of a fully re-encoded corpus.
reward = make_reward("dcg_scaled", k=10)
local_scores, naive_scores = local.scores(queries), naive.scores(queries)
local_rewards = [reward(local_scores[i], {r[0]: 1.0}) for i, r in enumerate(relevant)]
naive_rewards = [reward(naive_scores[i], {r[0]: 1.0}) for i, r in enumerate(relevant)]
print("rewards, local refresh:", [round(r, 4) for r in local_rewards])
print("rewards, full re-encode:", [round(r, 4) for r in naive_rewards])
print(
    "rows re-encoded after the first encoding: local",
    local.total_rows_encoded - NUM_DOCS,
    "naive",
    naive.total_rows_encoded - NUM_DOCS,
)
