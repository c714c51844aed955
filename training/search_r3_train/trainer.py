"""The stage-1 trainer: transformers ``Trainer`` with our collator, loss and dev evaluation.

Checkpoints, resume, logging, gradient accumulation, mixed precision, DeepSpeed and FSDP all come
from ``Trainer``; this class only adds ``compute_loss`` (four logged terms) and an ``evaluate``
that scores the dev collection by nDCG@10 with the same code as ``search-r3 eval``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from search_r3_train.arguments import LossArguments
from search_r3_train.losses import (
    IGNORE_INDEX,
    gather_no_grad,
    gather_with_grad,
    infonce_loss,
    kl_loss,
    listwise_distill_loss,
    lm_loss,
    triplet_loss,
    world,
)
from search_r3_train.modeling import LoadedModel, forward_documents, forward_queries

logger = logging.getLogger(__name__)

DEV_METRICS = ("nDCG@10", "R@100", "RR@10")


@dataclass
class SFTConfig(TrainingArguments):
    """``TrainingArguments`` with defaults that suit contrastive SFT of a search-r3 model.

    Every ``TrainingArguments`` field (output_dir, learning_rate, save_steps, report_to, ...)
    works as usual; only these defaults differ.
    """

    remove_unused_columns: bool = field(
        default=False, metadata={"help": "kept False: the collator reads the raw text columns."}
    )
    metric_for_best_model: str | None = field(
        default="eval_nDCG@10", metadata={"help": "dev metric that picks the best checkpoint."}
    )
    greater_is_better: bool | None = field(default=True, metadata={"help": "higher dev metric is better."})
    logging_steps: float = field(default=10, metadata={"help": "log the loss terms every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept (best is kept too)."})


class SFTTrainer(Trainer):
    """``Trainer`` whose loss is w_lm·L_lm + w_kl·L_kl + w_nce·L_infonce + w_tri·L_triplet.

    Args:
        loaded: The model bundle from `load_for_training`.
        loss_args: Loss weights, temperature and margin.
        dev_collection: Collection scored by nDCG@10 in ``evaluate`` (None: no evaluation).
        eval_reasoning: Generate reasoning for dev queries (slow) instead of direct queries.
        group_size: Documents per query in a batch (1 positive + hard negatives).
    """

    def __init__(
        self,
        *args: Any,
        loaded: LoadedModel,
        loss_args: LossArguments,
        group_size: int,
        dev_collection: Any = None,
        eval_reasoning: bool = False,
        eval_max_reasoning_tokens: int = 64,
        **kwargs: Any,
    ):
        super().__init__(*args, model=loaded.model, processing_class=loaded.tokenizer, **kwargs)
        self.loaded = loaded
        self.loss_args = loss_args
        self.group_size = group_size
        self.dev_collection = dev_collection
        self.eval_reasoning = eval_reasoning
        self.eval_max_reasoning_tokens = eval_max_reasoning_tokens
        self.best_dev: dict[str, float] = {}
        # our loss is already a mean per micro-batch: let Trainer scale it for accumulation
        self.model_accepts_loss_kwargs = False
        self._terms: dict[str, list[float]] = defaultdict(list)
        if loaded.reference is not None:
            loaded.reference.to(self.args.device)

    # -- loss ---------------------------------------------------------------------------------
    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        la, loaded = self.loss_args, self.loaded
        normalize = loaded.settings.normalize
        query = forward_queries(
            model,
            inputs["query_input_ids"],
            inputs["query_attention_mask"],
            inputs["query_labels"],
            loaded.embed_id,
            normalize,
        )
        docs = forward_documents(
            model, inputs["doc_input_ids"], inputs["doc_attention_mask"], loaded.embed_id, normalize
        )
        terms: dict[str, torch.Tensor] = {}
        if la.loss_weight_lm > 0:
            terms["lm"] = lm_loss(query.logits, query.targets)
        if la.loss_weight_kl > 0:
            ref_logits = self._reference_logits(model, inputs)
            terms["kl"] = kl_loss(query.logits, ref_logits, query.targets != IGNORE_INDEX)
        batch = query.embeddings.shape[0]
        groups = docs.view(batch, self.group_size, -1)
        if la.loss_weight_infonce > 0:
            terms["infonce"] = self._infonce(query.embeddings, docs, inputs)
        if la.loss_weight_triplet > 0 and self.group_size > 1:
            terms["triplet"] = triplet_loss(query.embeddings, groups[:, 0], groups[:, 1:], la.triplet_margin)
        if la.loss_weight_distill > 0 and self.group_size > 1 and "teacher_scores" in inputs:
            student = torch.nn.functional.cosine_similarity(query.embeddings[:, None], groups, dim=-1)
            terms["distill"] = listwise_distill_loss(
                student,
                inputs["teacher_scores"],
                la.distill_temperature,
                la.distill_teacher_temperature,
                inputs["teacher_mask"],
            )
        weights = {
            "lm": la.loss_weight_lm,
            "kl": la.loss_weight_kl,
            "infonce": la.loss_weight_infonce,
            "triplet": la.loss_weight_triplet,
            "distill": la.loss_weight_distill,
        }
        loss = sum(weights[name] * value for name, value in terms.items())
        for name, value in terms.items():
            self._terms[f"loss_{name}"].append(float(value.detach()))
        with torch.no_grad():
            pos = (query.embeddings * groups[:, 0]).sum(-1).mean()
            self._terms["cos_pos"].append(float(pos))
            if self.group_size > 1:
                self._terms["cos_neg"].append(
                    float(torch.einsum("bh,bkh->bk", query.embeddings, groups[:, 1:]).mean())
                )
        return (loss, {"query_embeddings": query.embeddings}) if return_outputs else loss

    def _infonce(
        self, queries: torch.Tensor, docs: torch.Tensor, inputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """InfoNCE against every document of every process (gathered with gradients)."""
        rank, size = world()
        gather = self.loss_args.infonce_gather and size > 1
        all_docs = gather_with_grad(docs) if gather else docs
        keys = gather_no_grad(inputs["doc_keys"]) if gather else inputs["doc_keys"]
        offset = rank * docs.shape[0] if gather else 0
        batch = queries.shape[0]
        targets = offset + torch.arange(batch, device=docs.device) * self.group_size
        positives = inputs["query_positive_keys"]
        # a copy of one of the query's own positives elsewhere in the batch is not a negative
        exclude = (keys[None, :, None] == positives[:, None, :]).any(-1)  # padding keys (-1) never match
        self._terms["infonce_candidates"].append(float(all_docs.shape[0]))
        return infonce_loss(queries, all_docs, targets, self.loss_args.infonce_temperature, exclude)

    def _reference_logits(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the frozen base on the same assistant positions (LoRA: adapter disabled)."""
        unwrapped = self.accelerator.unwrap_model(model)
        with torch.no_grad():
            if self.loaded.reference is not None:
                return self._ref_forward(self.loaded.reference, inputs)
            if hasattr(unwrapped, "disable_adapter"):
                with unwrapped.disable_adapter():
                    return self._ref_forward(unwrapped, inputs)
        raise RuntimeError(
            "loss_weight_kl > 0 needs a reference: LoRA, or a frozen copy in full fine-tuning."
        )

    def _ref_forward(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return forward_queries(
            model,
            inputs["query_input_ids"],
            inputs["query_attention_mask"],
            inputs["query_labels"],
            self.loaded.embed_id,
            self.loaded.settings.normalize,
            with_embeddings=False,
        ).logits

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss term since the last log to the training logs."""
        if "loss" in logs and self._terms:
            for name, values in self._terms.items():
                logs[name] = sum(values) / len(values)
            self._terms.clear()
        super().log(logs, start_time)

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """nDCG@10 (and Recall@100, MRR@10) of the current model on the dev collection.

        Computed on the main process (the same code as ``search-r3 eval``) and shared with the
        others, so every process agrees on the best checkpoint.
        """
        if self.dev_collection is None:
            return {}
        from accelerate.utils import broadcast_object_list

        metrics: dict[str, float] = {}
        if self.accelerator.is_main_process:
            metrics = self._dev_metrics(metric_key_prefix)
        if self.accelerator.num_processes > 1:
            shared = [metrics]
            broadcast_object_list(shared, from_process=0)
            metrics = shared[0]
        self.log(metrics)
        key = self.args.metric_for_best_model or f"{metric_key_prefix}_nDCG@10"
        if key in metrics and metrics[key] >= self.best_dev.get(key, float("-inf")):
            self.best_dev = {**metrics, "step": self.state.global_step}
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _dev_metrics(self, prefix: str) -> dict[str, float]:
        from search_r3 import ReasoningEmbeddings
        from search_r3.evaluation import dense_run, evaluate_run

        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        start = time.perf_counter()
        embeddings = ReasoningEmbeddings(
            model,
            self.loaded.tokenizer,
            self.loaded.settings,
            max_length=self.loaded.prompts.max_length,  # the run's text_max_length, if set
            batch_size=self.args.per_device_eval_batch_size,
        )
        try:
            run, encoded = dense_run(
                embeddings,
                self.dev_collection,
                reasoning=self.eval_reasoning,
                max_reasoning_tokens=self.eval_max_reasoning_tokens,
                show_progress_bar=not self.args.disable_tqdm,
            )
        finally:
            model.train(was_training)
        scores = evaluate_run(self.dev_collection.qrels, run, DEV_METRICS)
        metrics = {f"{prefix}_{name}": value for name, value in scores.items()}
        metrics[f"{prefix}_runtime"] = round(time.perf_counter() - start, 2)
        if self.eval_reasoning:
            metrics[f"{prefix}_forced_rate"] = float(encoded.forced.mean()) if len(encoded.forced) else 0.0
        return metrics
