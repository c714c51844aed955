"""Each loss term against a direct, loop-based computation on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from search_r3_train.losses import (
    IGNORE_INDEX,
    gather_no_grad,
    gather_with_grad,
    infonce_loss,
    kl_loss,
    lm_loss,
    triplet_loss,
)


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def test_lm_loss_is_mean_negative_log_likelihood_of_unmasked_targets():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, IGNORE_INDEX, 4], [IGNORE_INDEX, 0, 2]])
    terms = []
    for b in range(2):
        for t in range(3):
            if targets[b, t] != IGNORE_INDEX:
                probs = torch.softmax(logits[b, t], -1)
                terms.append(-math.log(float(probs[targets[b, t]])))
    assert float(lm_loss(logits, targets)) == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_kl_loss_is_mean_kl_of_model_from_reference_over_masked_positions():
    torch.manual_seed(1)
    logits, ref = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    expected = []
    for b in range(2):
        for t in range(3):
            if mask[b, t]:
                p, q = torch.softmax(logits[b, t], -1), torch.softmax(ref[b, t], -1)
                expected.append(sum(float(p[v] * math.log(p[v] / q[v])) for v in range(4)))
    assert float(kl_loss(logits, ref, mask)) == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    assert float(kl_loss(logits, logits, mask)) == pytest.approx(0.0, abs=1e-6)


def test_infonce_is_cross_entropy_over_cosine_over_temperature():
    torch.manual_seed(2)
    q, d = torch.randn(3, 6), torch.randn(7, 6)
    targets = torch.tensor([0, 3, 5])
    tau = 0.05
    expected = 0.0
    for i in range(3):
        scores = [cos(q[i], d[j]) / tau for j in range(7)]
        top = max(scores)
        log_z = top + math.log(sum(math.exp(s - top) for s in scores))
        expected += log_z - scores[int(targets[i])]
    assert float(infonce_loss(q, d, targets, tau)) == pytest.approx(expected / 3, rel=1e-4)


def test_infonce_exclusion_drops_other_copies_of_own_positive_but_never_the_target():
    torch.manual_seed(3)
    q, d = torch.randn(2, 4), torch.randn(5, 4)
    targets = torch.tensor([0, 2])
    exclude = torch.zeros(2, 5, dtype=torch.bool)
    exclude[0, 4] = True  # document 4 is query 0's positive too
    exclude[1, 2] = True  # the target itself must stay in
    tau = 0.1
    expected = 0.0
    for i, allowed in ((0, [0, 1, 2, 3]), (1, [0, 1, 2, 3, 4])):
        scores = {j: cos(q[i], d[j]) / tau for j in allowed}
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        expected += log_z - scores[int(targets[i])]
    assert float(infonce_loss(q, d, targets, tau, exclude)) == pytest.approx(expected / 2, rel=1e-4)


def test_triplet_is_mean_hinge_over_every_negative():
    torch.manual_seed(4)
    q, pos, neg = torch.randn(2, 5), torch.randn(2, 5), torch.randn(2, 3, 5)
    margin = 0.3
    expected = [
        max(0.0, margin - cos(q[b], pos[b]) + cos(q[b], neg[b, k])) for b in range(2) for k in range(3)
    ]
    assert float(triplet_loss(q, pos, neg, margin)) == pytest.approx(sum(expected) / 6, rel=1e-5)
    # a negative identical to the positive costs exactly the margin
    same = triplet_loss(q, pos, pos[:, None, :], margin)
    assert float(same) == pytest.approx(margin, rel=1e-5)


def test_losses_carry_gradients():
    q = torch.randn(2, 4, requires_grad=True)
    d = torch.randn(4, 4, requires_grad=True)
    loss = infonce_loss(q, d, torch.tensor([0, 2]), 0.05) + triplet_loss(q, d[:2], d[2:, None], 0.1)
    loss.backward()
    assert q.grad is not None and d.grad is not None and q.grad.abs().sum() > 0


def test_gather_is_identity_in_one_process():
    t = torch.randn(3, 2)
    assert gather_with_grad(t) is t
    assert torch.equal(gather_no_grad(t), t)
