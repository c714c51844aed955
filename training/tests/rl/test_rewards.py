"""Ranking rewards against hand computations (and nDCG against ir-measures)."""

from __future__ import annotations

import math

import pytest
import torch

from search_r3_train.rl.rewards import (
    REWARDS,
    DCGScaledReward,
    MarginReward,
    NDCGReward,
    ReciprocalRankReward,
    RetrievalReward,
    UnknownRewardError,
    make_reward,
    ranks_of,
    register_reward,
)

# ranking: d0 (0.9) > d3 (0.7) > d2 (0.5) > d1 (0.1) > d4 (-0.2)
SCORES = torch.tensor([0.9, 0.1, 0.5, 0.7, -0.2])
RELEVANT = {2: 3.0, 4: 1.0}  # ranks 3 and 5
IDCG = 3 / math.log2(2) + 1 / math.log2(3)


def test_ranks_are_one_based_and_ties_resolve_upwards():
    assert ranks_of(SCORES, torch.tensor([0, 3, 2, 1, 4])).tolist() == [1, 2, 3, 4, 5]
    assert ranks_of(torch.tensor([0.5, 0.5, 0.1]), torch.tensor([1, 2])).tolist() == [1, 3]


def test_dcg_scaled_by_hand():
    d2 = 3 * (1 + 0.5) / 2 / math.log2(1 + 3)
    d4 = 1 * (1 - 0.2) / 2 / math.log2(1 + 5)
    assert DCGScaledReward(k=10)(SCORES, RELEVANT) == pytest.approx((d2 + d4) / IDCG, rel=1e-6)
    assert DCGScaledReward(k=3)(SCORES, RELEVANT) == pytest.approx(d2 / IDCG, rel=1e-6)  # d4 is cut off
    assert DCGScaledReward(k=None)(SCORES, RELEVANT) == pytest.approx((d2 + d4) / IDCG, rel=1e-6)


def test_dcg_scaled_rewards_similarity_beyond_rank_one():
    """At rank 1 nDCG saturates; DCG_scaled still prefers the closer positive (method.md §6)."""
    near = torch.tensor([0.95, 0.1, 0.2])
    far = torch.tensor([0.40, 0.1, 0.2])
    assert NDCGReward()(near, {0: 1}) == NDCGReward()(far, {0: 1}) == 1.0
    assert DCGScaledReward()(near, {0: 1}) == pytest.approx(0.975)
    assert DCGScaledReward()(far, {0: 1}) == pytest.approx(0.70)


def test_ndcg_reciprocal_rank_margin_by_hand():
    assert NDCGReward(k=10)(SCORES, RELEVANT) == pytest.approx((3 / 2 + 1 / math.log2(6)) / IDCG, rel=1e-6)
    assert ReciprocalRankReward()(SCORES, RELEVANT) == pytest.approx(1 / 3)
    assert ReciprocalRankReward(k=2)(SCORES, RELEVANT) == 0.0
    assert MarginReward()(SCORES, RELEVANT) == pytest.approx((0.5 - 0.9) / 2)
    assert MarginReward()(SCORES, {0: 1}) == pytest.approx((0.9 - 0.7) / 2)


def test_ndcg_agrees_with_ir_measures():
    ir_measures = pytest.importorskip("ir_measures")
    generator = torch.Generator().manual_seed(3)
    scores = torch.rand(40, generator=generator)
    relevant = {5: 2, 11: 1, 17: 3, 30: 1}
    qrels = {"q": {str(d): int(g) for d, g in relevant.items()}}
    run = {"q": {str(d): float(s) for d, s in enumerate(scores)}}
    expected = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10]
    assert NDCGReward(k=10)(scores, relevant) == pytest.approx(expected, abs=1e-6)


def test_no_relevant_document_gives_nan_and_bad_input_raises():
    assert math.isnan(DCGScaledReward()(SCORES, {}))
    assert math.isnan(DCGScaledReward()(SCORES, {1: 0}))  # zero gain is not relevant
    with pytest.raises(IndexError, match="outside the corpus"):
        NDCGReward()(SCORES, {9: 1})
    with pytest.raises(ValueError, match="one row per query"):
        NDCGReward()(SCORES.unsqueeze(0), {1: 1})
    with pytest.raises(ValueError, match="k must be"):
        DCGScaledReward(k=0)


def test_registry_builds_by_name_path_and_user_class():
    assert set(REWARDS) >= {"dcg_scaled", "ndcg", "rr", "margin"}
    reward = make_reward("ndcg", k=5)
    assert isinstance(reward, NDCGReward) and reward.k == 5
    assert isinstance(make_reward("margin", k=5), MarginReward)  # keywords it does not take are dropped
    assert isinstance(make_reward("search_r3_train.rl.rewards:ReciprocalRankReward"), ReciprocalRankReward)
    with pytest.raises(UnknownRewardError, match="dcg_scaled"):
        make_reward("dcg")
    with pytest.raises(UnknownRewardError, match="not a"):
        make_reward("math:sqrt")

    @register_reward("test_best_cosine")
    class BestCosine(RetrievalReward):
        def score(self, scores, relevant):
            return float(scores[list(relevant)].max())

    try:
        assert make_reward("test_best_cosine")(SCORES, RELEVANT) == pytest.approx(0.5)
    finally:
        REWARDS.pop("test_best_cosine")
