"""``trl.GRPOTrainer`` with the two things Search-R3 needs from it, and nothing else.

1. Prompts are built by ``search_r3.prompts.PromptBuilder`` (the ids inference uses, with user
   text tokenised as plain data), not by re-rendering the chat template: ``_tokenize_prompts``.
2. An optional contrastive term on the rollouts' embeddings (method.md §6, ours): InfoNCE of
   each scored rollout's embedding (with gradients) against its best relevant document and the
   top-ranked non-relevant ones from the environment's cached vectors. Off by default.

Group-normalised advantages, the clipped objective, the KL to the stage-1 reference and LoRA are
TRL's own code, unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from trl import GRPOTrainer

from search_r3.pooling import backbone_of, pool_embed_token, position_ids_from_mask
from search_r3.prompts import PromptBuilder
from search_r3_train.rl.reward_function import RetrievalRewardFunction


class SearchR3GRPOTrainer(GRPOTrainer):
    """GRPO over reasoning rollouts that end in the embed token.

    Args:
        retrieval_reward: The reward object (it is also passed in ``reward_funcs``); bound to
            this trainer's model so it embeds with the current policy.
        prompt_builder: Builds reasoning prompts from the ``prompt`` column (query text).
        contrastive_weight: Weight of the optional contrastive term (0: off).
        contrastive_temperature: InfoNCE temperature of that term.
        **kwargs: Passed to ``trl.GRPOTrainer``.
    """

    def __init__(
        self,
        *args: Any,
        retrieval_reward: RetrievalRewardFunction,
        prompt_builder: PromptBuilder,
        contrastive_weight: float = 0.0,
        contrastive_temperature: float = 0.05,
        **kwargs: Any,
    ):
        self.prompt_builder = prompt_builder
        self.retrieval_reward = retrieval_reward
        self.contrastive_weight = float(contrastive_weight)
        self.contrastive_temperature = float(contrastive_temperature)
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError("contrastive weight must be >= 0 and its temperature > 0.")
        super().__init__(*args, **kwargs)
        # The reward reads embeddings from whatever model the trainer ends up holding (PEFT-wrapped or not).
        retrieval_reward.encoder.bind(lambda: self.accelerator.unwrap_model(self.model))

    # -- prompts --------------------------------------------------------------------------------
    def _tokenize_prompts(self, prompts: list):
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError(
                "The search-r3 RL dataset's 'prompt' column must hold the query text (a string); "
                "the reasoning prompt is built from it with the model's own templates."
            )
        return [self.retrieval_reward.prompt_ids(p) for p in prompts], None, {}

    # -- contrastive term -----------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.contrastive_weight > 0:
            scored = self.retrieval_reward.last
            device = output["completion_ids"].device
            width = max(1, self.retrieval_reward.contrastive_negatives)
            negatives = torch.full((len(scored.positives), width), -1, dtype=torch.long)
            for row, docs in enumerate(scored.negatives):
                negatives[row, : len(docs)] = torch.tensor(docs[:width], dtype=torch.long)
            positives = torch.tensor(
                [p if e else -1 for p, e in zip(scored.positives, scored.emitted, strict=True)],
                dtype=torch.long,
            )
            # tensors with a batch dimension survive TRL's shuffle and split together with the rollouts
            output["rl_positive"] = positives.to(device)
            output["rl_negatives"] = negatives.to(device)
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.contrastive_weight > 0 and "rl_positive" in inputs:
            term = self._contrastive_loss(model, inputs)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["contrastive_loss"].append(
                self.accelerator.gather(term.detach().reshape(1)).mean().item()
            )
            normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + self.contrastive_weight * term / normalizer
        return loss

    def _contrastive_loss(self, model, inputs: dict[str, Any]) -> torch.Tensor:
        """InfoNCE of the rollouts that emitted the token; 0 (with a graph) if none did.

        The forward runs over every rollout of the batch, valid or not, so each rank runs exactly
        one (as DeepSpeed ZeRO-3 requires); the embedding is read only where the token is.
        """
        positive = inputs["rl_positive"]
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        backbone = backbone_of(self.accelerator.unwrap_model(model))
        hidden = backbone(
            input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=False
        ).last_hidden_state
        rows = (positive >= 0).nonzero().flatten()
        vectors = self.retrieval_reward.environment.vectors
        if len(rows) == 0 or vectors is None:
            return hidden.sum() * 0.0
        queries = pool_embed_token(hidden[rows], ids[rows], self.retrieval_reward.embed_id, normalize=True)
        candidates = torch.cat([positive[rows].unsqueeze(1), inputs["rl_negatives"][rows]], dim=1)
        valid = candidates >= 0
        docs = vectors.to(queries.device)[candidates.clamp(min=0)]  # (rows, 1 + negatives, dim), cached
        logits = torch.einsum("rd,rcd->rc", queries, docs) / self.contrastive_temperature
        logits = logits.masked_fill(~valid, float("-inf"))
        return F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=logits.device))
