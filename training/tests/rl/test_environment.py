"""Refresh logic of the retrieval environment: which rows, version stamps, budget, full refresh."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_r3_train.rl.environment import (
    EnvironmentConfig,
    NaiveEnvironment,
    RetrievalEnvironment,
    RetrievalEnvironmentError,
    make_environment,
)


class DriftingPolicy:
    """A document encoder whose output moves with ``t`` (the policy "training"); records calls."""

    def __init__(self, num_docs: int, dim: int = 8, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.base = torch.randn(num_docs, dim, generator=generator)
        self.shift = torch.randn(num_docs, dim, generator=generator)
        self.t = 0.0
        self.calls: list[list[int]] = []

    def vectors(self, indices=None) -> torch.Tensor:
        idx = torch.arange(len(self.base)) if indices is None else torch.as_tensor(indices)
        return F.normalize(self.base[idx] + self.t * self.shift[idx], dim=-1)

    def __call__(self, indices):
        self.calls.append(list(indices))
        return self.vectors(indices)


def brute_force_graph(vectors: torch.Tensor, k: int) -> torch.Tensor:
    sims = vectors @ vectors.T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(k, dim=1).indices


def make(num_docs=60, **config):
    policy = DriftingPolicy(num_docs)
    defaults = dict(
        top_k=3, graph_k=4, refresh_neighbours=2, staleness_budget=0, drift_threshold=0, probe_size=5
    )
    env = RetrievalEnvironment(policy, num_docs, EnvironmentConfig(**{**defaults, **config}))
    return policy, env


def test_first_step_encodes_everything_and_builds_the_graph():
    policy, env = make()
    stats = env.step(torch.randn(2, 8), [[1], [2]])
    assert stats.full_refresh and stats.reason == "initial" and stats.rows_encoded == 60
    assert policy.calls == [list(range(60))]
    assert torch.equal(env.versions, torch.zeros(60, dtype=torch.long))
    torch.testing.assert_close(env.vectors, policy.vectors())
    assert torch.equal(env.graph.sort(dim=1).values, brute_force_graph(env.vectors, 4).sort(dim=1).values)


def test_local_step_refreshes_retrieved_relevant_and_neighbours_only():
    policy, env = make()
    env.step(torch.zeros(0, 8), [])
    queries = torch.randn(3, 8)
    relevant = [[7, 8], [], [40]]
    old_vectors, old_graph = env.vectors.clone(), env.graph.clone()
    retrieved = (F.normalize(queries, dim=-1) @ old_vectors.T).topk(3, dim=1).indices.flatten()
    seeds = set(retrieved.tolist()) | {7, 8, 40}
    expected = seeds | set(old_graph[sorted(seeds), :2].flatten().tolist())

    policy.t = 0.5
    policy.calls.clear()
    stats = env.step(queries, relevant)

    assert not stats.full_refresh and stats.step == 1
    assert len(policy.calls) == 1 and set(policy.calls[0]) == expected
    assert stats.rows_encoded == len(expected) == stats.breakdown["affected"]
    touched = torch.tensor(sorted(expected))
    untouched = torch.tensor(sorted(set(range(60)) - expected))
    assert (env.versions[touched] == 1).all() and (env.versions[untouched] == 0).all()
    torch.testing.assert_close(env.vectors[touched], policy.vectors(touched))
    torch.testing.assert_close(env.vectors[untouched], old_vectors[untouched])  # stale rows kept as they were
    # the refreshed rows are re-linked against the current vectors
    assert torch.equal(
        env.graph[touched].sort(dim=1).values, brute_force_graph(env.vectors, 4)[touched].sort(dim=1).values
    )
    assert torch.equal(env.graph[untouched], old_graph[untouched])
    assert stats.staleness_max == 1 and stats.staleness_mean == pytest.approx(len(untouched) / 60)


def test_scores_use_the_refreshed_rows():
    policy, env = make()
    env.step(torch.zeros(0, 8), [])
    policy.t = 1.0
    query = torch.randn(1, 8)
    env.step(query, [[5]])
    fresh = F.normalize(query, dim=-1) @ policy.vectors().T
    assert env.scores(query)[0, 5] == pytest.approx(float(fresh[0, 5]), abs=1e-6)


def test_staleness_budget_takes_the_least_recently_encoded_rows():
    policy, env = make(num_docs=30, staleness_budget=4, refresh_neighbours=0, top_k=1)
    env.step(torch.zeros(0, 8), [])
    seen: list[int] = []
    for step in range(1, 9):
        before = env.versions.clone()
        policy.calls.clear()
        stats = env.step(env.vectors[:1].clone(), [[0]])  # retrieves and judges only document 0
        assert stats.breakdown == {"affected": 1, "stale": 4}
        chosen = sorted(set(policy.calls[0]) - {0})
        candidates = [i for i in range(30) if i != 0]
        oldest = sorted(candidates, key=lambda i: (int(before[i]), i))[:4]
        assert chosen == sorted(oldest), f"step {step}"
        seen.extend(chosen)
    assert set(seen) == set(range(1, 30))  # a full sweep of the stale rows within 8 steps
    assert env.staleness().max() <= 8


def test_fractional_budget_is_a_share_of_the_corpus():
    _, env = make(num_docs=200, staleness_budget=0.05, refresh_neighbours=0)
    assert env._budget_rows() == 10


def test_full_refresh_every_n_steps_rebuilds_everything():
    policy, env = make(full_refresh_every=3)
    env.step(torch.zeros(0, 8), [])
    fulls = []
    for _ in range(6):
        policy.t += 0.3
        fulls.append(env.step(torch.randn(1, 8), [[1]]).full_refresh)
    assert fulls == [False, False, True, False, False, True]
    assert env.full_refreshes == 3  # initial + steps 3 and 6
    assert (env.versions == 6).all()
    torch.testing.assert_close(env.vectors, policy.vectors())
    assert torch.equal(env.graph.sort(dim=1).values, brute_force_graph(env.vectors, 4).sort(dim=1).values)


def test_drift_past_the_threshold_triggers_a_full_refresh():
    policy, env = make(drift_threshold=0.05, drift_check_every=2)
    env.step(torch.zeros(0, 8), [])
    policy.t = 0.01  # tiny drift
    quiet = [env.step(torch.zeros(0, 8), []) for _ in range(2)]
    assert quiet[0].drift is None  # not a check step
    assert quiet[1].drift is not None and quiet[1].drift < 0.05 and not quiet[1].full_refresh
    assert quiet[1].breakdown["probe"] == 5
    policy.t = 2.0  # the policy moved a lot
    moved = [env.step(torch.zeros(0, 8), []) for _ in range(2)]
    assert moved[1].full_refresh and moved[1].drift > 0.05 and "drift" in moved[1].reason
    at_last_full_refresh = F.normalize(policy.base, dim=-1)[env.probe]  # t = 0: the initial encoding
    expected = 1 - (policy.vectors(env.probe) * at_last_full_refresh).sum(1).mean()
    assert moved[1].drift == pytest.approx(float(expected), abs=1e-5)
    # the probe reference is reset to the refreshed vectors
    assert env.measure_drift() == pytest.approx(0.0, abs=1e-6)


def test_naive_environment_reencodes_the_whole_corpus_each_step():
    policy = DriftingPolicy(20)
    env = make_environment("naive", policy, 20, EnvironmentConfig(top_k=2))
    assert isinstance(env, NaiveEnvironment)
    for _ in range(3):
        policy.t += 0.5
        stats = env.step(torch.randn(2, 8), [[1], [2]])
        assert stats.rows_encoded == 20 and stats.encoded_fraction == 1.0
    assert policy.calls == [list(range(20))] * 3
    torch.testing.assert_close(env.vectors, policy.vectors())


def test_bad_configuration_and_calls_raise_clear_errors():
    with pytest.raises(RetrievalEnvironmentError, match="corpus is empty"):
        RetrievalEnvironment(DriftingPolicy(1), 0)
    with pytest.raises(RetrievalEnvironmentError, match="refresh_neighbours"):
        EnvironmentConfig(graph_k=2, refresh_neighbours=3)
    with pytest.raises(RetrievalEnvironmentError, match="top_k"):
        EnvironmentConfig(top_k=0)
    with pytest.raises(RetrievalEnvironmentError, match="local"):
        make_environment("lazy", DriftingPolicy(3), 3)
    _, env = make()
    with pytest.raises(RetrievalEnvironmentError, match="step"):
        env.scores(torch.randn(1, 8))
    env.step(torch.zeros(0, 8), [])
    with pytest.raises(RetrievalEnvironmentError, match="relevant lists"):
        env.step(torch.randn(2, 8), [[1]])
    with pytest.raises(RetrievalEnvironmentError, match="outside the corpus"):
        env.step(torch.randn(1, 8), [[600]])


def test_single_document_corpus_works():
    policy = DriftingPolicy(1)
    env = RetrievalEnvironment(policy, 1, EnvironmentConfig(top_k=5, graph_k=3, refresh_neighbours=2))
    env.step(torch.randn(1, 8), [[0]])
    stats = env.step(torch.randn(1, 8), [[0]])
    assert stats.rows_encoded == 1 and env.scores(torch.randn(1, 8)).shape == (1, 1)
