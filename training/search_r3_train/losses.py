"""The four stage-1 loss terms, each a plain function of tensors (method.md §5).

L = w_lm·L_lm + w_kl·L_kl + w_nce·L_infonce + w_tri·L_triplet
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

IGNORE_INDEX = -100


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over positions whose target is not ``IGNORE_INDEX``.

    ``logits[b, t]`` predicts ``targets[b, t]`` (already shifted by the caller).
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def kl_loss(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of KL(p_model ‖ p_ref), summed over the vocabulary.

    The direction of the RL literature's KL penalty: it penalises the trained model for putting
    mass where the frozen base puts little.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    ref_logp = F.log_softmax(ref_logits.float(), dim=-1)
    per_token = (logp.exp() * (logp - ref_logp)).sum(-1)
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp(min=1)


def infonce_loss(
    queries: torch.Tensor,
    documents: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy over cosine similarities / τ between each query and every document.

    Args:
        queries: ``(B, H)``; documents: ``(N, H)`` (positives, hard and in-batch negatives).
        targets: ``(B,)`` index of each query's positive in ``documents``.
        exclude: optional ``(B, N)`` bool mask of documents that must not count as negatives
            (other copies of the query's own positives); the target itself is never excluded.
    """
    scores = F.normalize(queries.float(), dim=-1) @ F.normalize(documents.float(), dim=-1).T
    scores = scores / temperature
    if exclude is not None:
        exclude = exclude.clone()
        exclude[torch.arange(len(targets), device=targets.device), targets] = False
        scores = scores.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(scores, targets)


def triplet_loss(
    queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float
) -> torch.Tensor:
    """Mean of max(0, θ − cos(q, d⁺) + cos(q, d⁻)) over every query and each of its negatives.

    Shapes: queries ``(B, H)``, positives ``(B, H)``, negatives ``(B, K, H)``.
    """
    q = F.normalize(queries.float(), dim=-1)
    pos = (q * F.normalize(positives.float(), dim=-1)).sum(-1)
    neg = torch.einsum("bh,bkh->bk", q, F.normalize(negatives.float(), dim=-1))
    return F.relu(margin - pos[:, None] + neg).mean()


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0, keeping the gradient path.

    Each process gets the gradient of the loss with respect to its own rows from every other
    process's loss (``torch.distributed.nn`` sums them in the backward all-reduce).
    """
    _, size = world()
    if size == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (ids, masks: no gradient)."""
    _, size = world()
    if size == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def listwise_distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    student_temperature: float,
    teacher_temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over rows of KL(p_teacher ‖ p_student), each a softmax over the row's candidates.

    Args:
        student: ``(B, G)`` student scores (cosine similarities), divided by ``student_temperature``.
        teacher: ``(B, G)`` teacher scores (e.g. RRF), divided by ``teacher_temperature``.
        mask: optional ``(B,)`` bool, rows that have teacher scores; the others are left out.
    """
    log_student = F.log_softmax(student.float() / student_temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / teacher_temperature, dim=-1)
    per_row = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    if mask is None:
        return per_row.mean()
    weights = mask.to(per_row.dtype)
    return (per_row * weights).sum() / weights.sum().clamp(min=1)
