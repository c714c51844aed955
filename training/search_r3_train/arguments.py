"""Argument dataclasses shared by every training stage (parsed with ``trl.TrlParser``).

``ModelArguments`` and ``DataArguments`` are used by both ``sft`` and ``rl``; ``LossArguments``
holds the contrastive terms (stage 1, and the optional contrastive term of stage 2). Every field
name is unique across these classes, ``transformers.TrainingArguments`` and ``trl.GRPOConfig``,
so one flat YAML file plus command-line overrides fills all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search_r3.errors import SearchR3Error


class ConfigError(SearchR3Error, ValueError):
    """A training configuration value is missing or inconsistent."""


#: Fixes for configuration errors that libraries raise while the arguments are parsed.
_HINTS = {
    "generations": "set num_generations to 2 or more (GRPO compares rollouts of one prompt)",
    "bf16": "set bf16 false (or use_cpu true) on a machine without a bf16 GPU",
}


def parse_config(parser: object, argv: list[str]) -> tuple:
    """``parser.parse_args_and_config(argv)`` with library config errors turned into ``ConfigError``.

    The dataclasses of transformers and TRL check their values while they are built (e.g. GRPO's
    ``num_generations >= 2``); their ``ValueError`` becomes one line that names the field to fix.
    """
    import yaml

    try:
        return tuple(parser.parse_args_and_config(argv))  # type: ignore[attr-defined]
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        if isinstance(exc, SearchR3Error):
            raise
        message = " ".join(str(exc).split())
        hint = next(
            (fix for key, fix in _HINTS.items() if key in message),
            "fix the value in --config FILE or its --field override",
        )
        raise ConfigError(f"Invalid training configuration: {message} ({hint}).") from exc


@dataclass
class ModelArguments:
    """Which model to train and how (full fine-tuning or LoRA)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "search-r3 model folder or Hub id to start from (make one with `search-r3 init`). "
            "A plain instruction-tuned LM also works: the embed token is added on the fly."
        },
    )
    model_dtype: str = field(
        default="float32",
        metadata={"help": "dtype the weights are loaded in: float32, bfloat16, float16 or auto."},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "attention kernel (eager, sdpa, flash_attention_2); default: library's"},
    )
    text_max_length: int | None = field(
        default=None,
        metadata={
            "help": "token limit of one prompt (template + text; longer texts are cut) for this run's "
            "training and dev evaluation only; the saved model keeps its own max_length (default: that)."
        },
    )
    train_top_layers: int | None = field(
        default=None,
        metadata={
            "help": "full fine-tuning of only the top N decoder layers and the final norm; the rest, "
            "embeddings included, stay frozen (a much cheaper backward pass, e.g. on a CPU). None: all."
        },
    )
    use_lora: bool = field(default=False, metadata={"help": "train a LoRA adapter instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "modules LoRA wraps ('all-linear' or names such as q_proj v_proj)."},
    )
    train_embed_token: bool = field(
        default=True,
        metadata={
            "help": "with LoRA, also train the embed token's input and output embedding rows "
            "(peft trainable_token_indices); full fine-tuning always trains them."
        },
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "save the final model with the LoRA adapter merged (else an adapter folder)."},
    )


@dataclass
class DataArguments:
    """Training data and the dev collection used for evaluation during training."""

    train_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON lines {query, pos: [...], neg: [...], reasoning?}, or a collection folder "
            "(BEIR or Cranfield) converted on the fly: judged documents as positives, BM25 negatives."
        },
    )
    train_split: str = field(
        default="train",
        metadata={"help": "query split of a train collection to use: train, dev, test or all."},
    )
    dev_file: str | None = field(
        default=None,
        metadata={
            "help": "collection folder (or JSON lines) scored by nDCG@10 during training; default: "
            "the dev split of the train collection when train_file is one."
        },
    )
    dev_split: str = field(default="dev", metadata={"help": "query split of dev_file to evaluate on."})
    split_fractions: list[float] = field(
        default_factory=lambda: [0.5, 0.2, 0.3],
        metadata={"help": "train/dev/test fractions of a collection's queries."},
    )
    split_seed: int = field(default=13, metadata={"help": "seed of the query split."})
    negatives_per_query: int = field(
        default=3,
        metadata={"help": "hard negatives drawn per query and step (with replacement if fewer exist)."},
    )
    collection_negatives_depth: int = field(
        default=30,
        metadata={"help": "BM25 depth the hard negatives of a train collection are mined from."},
    )
    max_dev_queries: int | None = field(
        default=None, metadata={"help": "evaluate on at most this many dev queries (None: all)."}
    )
    max_dev_docs: int | None = field(
        default=None,
        metadata={
            "help": "score dev queries against every judged document plus a fixed random sample of the "
            "others, this many in all (a cheaper proxy on a large corpus; None: the whole corpus)."
        },
    )
    eval_reasoning: bool = field(
        default=False,
        metadata={"help": "generate reasoning for dev queries during evaluation (slow; off: direct query)."},
    )
    eval_max_reasoning_tokens: int = field(
        default=64, metadata={"help": "reasoning budget of dev queries when eval_reasoning is on."}
    )


@dataclass
class LossArguments:
    """L = w_lm·L_lm + w_kl·L_kl + w_nce·L_infonce + w_tri·L_triplet (method.md §5)."""

    loss_weight_lm: float = field(default=1.0, metadata={"help": "weight of the assistant-turn LM loss."})
    loss_weight_kl: float = field(
        default=1.0,
        metadata={
            "help": "weight of the KL to the frozen base on the assistant tokens (LoRA: adapter off; "
            "full fine-tuning: a frozen copy, none if 0)."
        },
    )
    loss_weight_infonce: float = field(default=1.0, metadata={"help": "weight of InfoNCE."})
    loss_weight_triplet: float = field(default=1.0, metadata={"help": "weight of the triplet loss."})
    infonce_temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature τ."})
    triplet_margin: float = field(default=0.1, metadata={"help": "triplet margin θ on cosine."})
    infonce_gather: bool = field(
        default=True,
        metadata={"help": "use every process's documents as negatives (all-gather with gradients)."},
    )
    loss_weight_distill: float = field(
        default=0.0,
        metadata={
            "help": "weight of the listwise KL to the teacher scores stored in the data "
            "(build-general-data --teacher); rows without teacher scores are left out."
        },
    )
    distill_temperature: float = field(
        default=0.05, metadata={"help": "temperature of the student's cosine scores in the distill term."}
    )
    distill_teacher_temperature: float = field(
        default=0.002,
        metadata={"help": "temperature of the teacher's scores (RRF scores lie within about 0.02-0.033)."},
    )

    def check(self) -> None:
        """Reject settings that make no loss or divide by zero."""
        weights = [
            self.loss_weight_lm,
            self.loss_weight_kl,
            self.loss_weight_infonce,
            self.loss_weight_triplet,
            self.loss_weight_distill,
        ]
        if any(w < 0 for w in weights):
            raise ConfigError("Loss weights must be >= 0.")
        if self.loss_weight_infonce == 0 and self.loss_weight_triplet == 0:
            raise ConfigError(
                "Both contrastive weights are 0, so the embedding would never train; set "
                "loss_weight_infonce or loss_weight_triplet above 0."
            )
        if self.infonce_temperature <= 0:
            raise ConfigError("infonce_temperature must be > 0 (e.g. 0.05).")
        if self.distill_temperature <= 0 or self.distill_teacher_temperature <= 0:
            raise ConfigError("distill_temperature and distill_teacher_temperature must be > 0.")
