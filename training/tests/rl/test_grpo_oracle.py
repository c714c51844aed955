"""The trainer's GRPO step against a plain-PyTorch oracle, on the same rollouts and rewards.

The trainer generates rollouts of one query with the tiny model and scores them with the real
retrieval reward; the oracle then recomputes, in a few lines of torch, the group-normalised
advantages and the clipped, KL-penalised, token-masked loss of those same rollouts, and the
gradient it gives.
"""

from __future__ import annotations

import pytest
import torch
from rl_helpers import rl_argv
from transformers import AutoModelForCausalLM

from search_r3_train.rl.build import build_rl
from search_r3_train.rl.cli import parse_args


def completion_logps(model, input_ids, attention_mask, completion_ids, temperature):
    """log pi(token) of each completion token, with the logits divided by the temperature."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    width = completion_ids.shape[1]
    logits = logits[:, -width - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


def oracle_grpo_loss(model, reference, batch, rewards, *, beta, epsilon, temperature, loss_type):
    """Plain-PyTorch GRPO (one group, first iteration, so pi_old = pi)."""
    advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)  # group-normalised, unbiased std
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    completion, token_mask = batch["completion_ids"], batch["completion_mask"].float()
    logps = completion_logps(model, ids, mask, completion, temperature)
    with torch.no_grad():
        ref_logps = completion_logps(reference, ids, mask, completion, temperature)
    ratio = torch.exp(logps - logps.detach())
    a = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * a, ratio.clamp(1 - epsilon, 1 + epsilon) * a)
    kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1  # k3 estimator of KL(pi || ref)
    # times the (value 1, differentiable) ratio: the unbiased reverse-KL gradient, TRL's default
    per_token = per_token + beta * kl * ratio
    if loss_type == "grpo":  # mean over each sequence's tokens, then over sequences
        loss = ((per_token * token_mask).sum(1) / token_mask.sum(1).clamp(min=1)).mean()
    else:  # dapo: mean over all completion tokens of the batch
        loss = (per_token * token_mask).sum() / token_mask.sum()
    return advantages, loss, ref_logps


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_trainer_step_matches_plain_pytorch_grpo(emitting_model_dir, rl_collection_dir, tmp_path, loss_type):
    beta, temperature = 0.04, 0.8
    args = parse_args(
        rl_argv(emitting_model_dir, rl_collection_dir, tmp_path / "out", "--loss_type", loss_type)
        + ["--beta", str(beta), "--temperature", str(temperature)]
    )
    setup = build_rl(*args)
    trainer = setup.trainer
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop otherwise
    model = trainer.model
    model.train()

    group = [trainer.train_dataset[3]] * 4  # one query, G = 4 rollouts
    batch = trainer._generate_and_score_completions(group)
    rewards = torch.tensor(setup.reward.last.rewards)
    assert rewards.std() > 0, "the rollouts must differ in reward for the comparison to mean anything"
    assert batch["completion_mask"].sum(1).min() >= 1

    # move the policy away from the reference, so the KL term has a value and a gradient
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    reference = AutoModelForCausalLM.from_pretrained(emitting_model_dir, dtype=torch.float32).eval()
    advantages, oracle_loss, ref_logps = oracle_grpo_loss(
        model,
        reference,
        batch,
        rewards,
        beta=beta,
        epsilon=trainer.args.epsilon,
        temperature=temperature,
        loss_type=loss_type,
    )
    torch.testing.assert_close(batch["advantages"], advantages, atol=1e-5, rtol=1e-5)
    mask = batch["completion_mask"].bool()
    torch.testing.assert_close(batch["ref_per_token_logps"][mask], ref_logps[mask], atol=1e-4, rtol=1e-4)

    model.zero_grad()
    trainer_loss = trainer.compute_loss(model, batch)
    trainer_loss.backward()
    trainer_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    oracle_loss.backward()
    torch.testing.assert_close(trainer_loss, oracle_loss, atol=1e-5, rtol=1e-4)
    assert trainer._metrics["train"]["kl"][-1] > 1e-4
    assert trainer_grads, "the trainer's loss must reach the parameters"
    for name, grad in trainer_grads.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, atol=1e-6, rtol=1e-3)


def test_contrastive_term_adds_infonce_of_the_emitting_rollouts(
    emitting_model_dir, rl_collection_dir, tmp_path
):
    from trl import GRPOTrainer

    from search_r3.pooling import backbone_of, embed_forward

    weight, temperature = 0.5, 0.1
    argv = rl_argv(emitting_model_dir, rl_collection_dir, tmp_path / "out", "--beta", "0")
    argv += ["--rl_contrastive_weight", str(weight), "--rl_contrastive_temperature", str(temperature)]
    argv += ["--rl_contrastive_negatives", "3"]
    setup = build_rl(*parse_args(argv))
    trainer = setup.trainer
    trainer.current_gradient_accumulation_steps = 1
    model = trainer.model
    model.train()
    batch = trainer._generate_and_score_completions([trainer.train_dataset[1]] * 4)
    last = setup.reward.last
    rows = [i for i, e in enumerate(last.emitted) if e]
    assert rows, "at least one rollout must emit the token for the term to exist"
    assert batch["rl_positive"].tolist() == [
        p if e else -1 for p, e in zip(last.positives, last.emitted, strict=True)
    ]

    total = trainer.compute_loss(model, batch)
    policy = GRPOTrainer.compute_loss(trainer, model, batch)
    # independent InfoNCE: each emitting rollout, unpadded, against its positive and negatives
    vectors = setup.reward.environment.vectors
    losses = []
    for i in rows:
        ids = torch.cat([batch["prompt_ids"][i][batch["prompt_mask"][i].bool()],
                         batch["completion_ids"][i][batch["completion_mask"][i].bool()]])  # fmt: skip
        q = embed_forward(backbone_of(model), ids[None], torch.ones_like(ids)[None], setup.prompts.embed_id)[
            0
        ]
        candidates = [last.positives[i], *last.negatives[i][:3]]
        logits = vectors[candidates] @ q / temperature
        losses.append(-torch.log_softmax(logits, dim=0)[0])
    expected = weight * torch.stack(losses).mean()
    torch.testing.assert_close(total - policy, expected, atol=1e-5, rtol=1e-4)
    assert trainer._metrics["train"]["contrastive_loss"][-1] == pytest.approx(
        float(expected / weight), rel=1e-4
    )
