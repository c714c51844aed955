"""Assemble stage 2: the start model, the data, the environment, the reward and the trainer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig

from search_r3.errors import MissingEmbedTokenError
from search_r3.prompts import PromptBuilder, embed_token_id
from search_r3.settings import SearchR3Settings
from search_r3_train.arguments import ConfigError, DataArguments, ModelArguments
from search_r3_train.export import training_args_as_json
from search_r3_train.modeling import record_start_folder
from search_r3_train.rl.arguments import EnvironmentArguments, RewardArguments, RLDataArguments
from search_r3_train.rl.data import RLData, load_rl_data
from search_r3_train.rl.environment import make_environment
from search_r3_train.rl.policy import PolicyEncoder
from search_r3_train.rl.reward_function import RetrievalRewardFunction
from search_r3_train.rl.rewards import make_reward
from search_r3_train.rl.trainer import SearchR3GRPOTrainer

logger = logging.getLogger(__name__)


@dataclass
class RLConfig(GRPOConfig):
    """``trl.GRPOConfig`` with defaults for search-r3 stage 2 (every GRPO field works as usual).

    ``bf16`` defaults to on only where a CUDA device supports it (TRL's default of on fails on
    CPU); logging is every step, since RL steps are few and slow.
    """

    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision; default: on if a CUDA GPU supports it, else off."},
    )
    logging_steps: float = field(default=1, metadata={"help": "log every N steps."})
    beta: float = field(
        default=0.04,
        metadata={"help": "KL coefficient to the stage-1 reference (method.md §6); 0 drops the reference."},
    )

    def __post_init__(self):
        if self.bf16 is None and not self.fp16:
            self.bf16 = (
                bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()) and not self.use_cpu
            )
        super().__post_init__()


def load_start_model(model_args: ModelArguments, output_dir: str | Path, need_saved_reference: bool) -> tuple:
    """The stage-1 model, its tokenizer and settings; refuses a model without the embed token.

    A LoRA adapter folder is merged onto its base (the core loader does it). When the trainer
    needs a reference model from disk (full fine-tuning with a KL term), a merged start model is
    saved under ``output_dir/reference-model`` first, since TRL loads the reference by path.
    """
    from transformers import AutoTokenizer

    from search_r3 import ReasoningEmbeddings

    path = model_args.model_name_or_path
    if not path:
        raise ConfigError(
            "Set model_name_or_path to the stage-1 model folder (the output of search-r3-train sft)."
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    settings_probe = _stored_settings(path)
    try:
        embed_token_id(tokenizer, settings_probe.embed_token)
    except MissingEmbedTokenError as exc:
        raise MissingEmbedTokenError(
            f"{path} has no {settings_probe.embed_token!r} token, so it cannot start RL: stage 2 trains a "
            "search-r3 model that already ends its answers with that token. Train one with "
            "`search-r3-train sft` (or make an untrained one with `search-r3 init BASE OUTPUT`) and pass "
            "that folder as model_name_or_path."
        ) from exc
    loaded = ReasoningEmbeddings.from_pretrained(
        path, device="cpu", dtype=model_args.model_dtype, max_length=model_args.text_max_length
    )
    model, tokenizer, settings = loaded.model, loaded.tokenizer, loaded.settings
    model.train()
    if model_args.attn_implementation:
        model.config._attn_implementation = model_args.attn_implementation
    if (Path(path) / "adapter_config.json").is_file():  # an adapter trained here names this as its base
        record_start_folder(model, path)
    if (Path(path) / "adapter_config.json").is_file() and need_saved_reference:
        reference = Path(output_dir) / "reference-model"
        model.save_pretrained(reference, safe_serialization=True)
        tokenizer.save_pretrained(reference)
        model.config._name_or_path = str(reference)
        logger.info("Start model is a LoRA adapter: merged copy saved as the KL reference at %s.", reference)
    return model, tokenizer, settings, loaded.prompts


def _stored_settings(path: str) -> SearchR3Settings:
    config = Path(path) / "config.json"
    if config.is_file():
        return SearchR3Settings.from_dict(json.loads(config.read_text()).get("search_r3"))
    return SearchR3Settings()


def stop_at_embed_token(model: Any, tokenizer: Any, embed_id: int) -> list[int]:
    """Make generation stop at the end of turn *or* the embed token.

    TRL reads the stop ids (and so the completion mask) from ``model.generation_config``;
    setting them only in ``generation_kwargs`` would change sampling but not the mask.
    """
    ids: list[int] = []
    eos = model.generation_config.eos_token_id
    for value in (eos if isinstance(eos, list) else [eos], [tokenizer.eos_token_id], [embed_id]):
        ids.extend(int(v) for v in value if v is not None and int(v) not in ids)
    model.generation_config.eos_token_id = ids
    return ids


def lora_config(model_args: ModelArguments) -> Any:
    """The PEFT LoRA config (TRL applies it; the KL reference is then the adapter switched off)."""
    from peft import LoraConfig

    targets = model_args.lora_target_modules
    if model_args.train_embed_token:
        logger.info(
            "RL with LoRA trains the adapter only: TRL reads log-probabilities through lm_head.weight "
            "directly, so the embed token's rows cannot carry a PEFT wrapper here."
        )
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules="all-linear" if targets in (["all-linear"], "all-linear") else list(targets),
        task_type="CAUSAL_LM",
    )


@dataclass
class RLSetup:
    """Everything ``build_rl`` made (the trainer plus the pieces tests and reports read)."""

    trainer: SearchR3GRPOTrainer
    reward: RetrievalRewardFunction
    data: RLData
    prompts: PromptBuilder
    stop_ids: list[int]


def build_rl(
    model_args: ModelArguments,
    data_args: DataArguments,
    rl_data_args: RLDataArguments,
    reward_args: RewardArguments,
    env_args: EnvironmentArguments,
    training_args: GRPOConfig,
    data: RLData | None = None,
) -> RLSetup:
    """Build the GRPO trainer for a stage-1 model on a collection (``data_args.train_file``).

    The arguments are the dataclasses ``search_r3_train.rl.cli.parse_args`` returns, in order;
    ``data`` replaces the collection with ready-made `RLData`.
    """
    if data is None:
        if not data_args.train_file:
            raise ConfigError("Set train_file to a collection folder (BEIR, TREC or Cranfield layout).")
        if data_args.dev_file:
            logger.warning("dev_file is not used by rl; evaluate the saved model with search_r3.evaluation.")
        data = load_rl_data(
            data_args.train_file, data_args.train_split, data_args.split_fractions, data_args.split_seed
        )
        if rl_data_args.rl_max_queries:
            data = data.sample_queries(rl_data_args.rl_max_queries, seed=data_args.split_seed)
        if rl_data_args.rl_max_docs:
            data = data.restrict(rl_data_args.rl_max_docs, seed=data_args.split_seed)
    logger.info("RL data: %d documents, %d training queries.", data.num_docs, len(data.queries))
    use_lora = model_args.use_lora
    need_reference = training_args.beta != 0.0 and not use_lora
    model, tokenizer, settings, prompts = load_start_model(
        model_args, training_args.output_dir, need_reference
    )
    stop_ids = stop_at_embed_token(model, tokenizer, prompts.embed_id)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    encoder = PolicyEncoder(
        model,
        prompts,
        data.documents,
        pad_id,
        batch_size=reward_args.rl_encode_batch_size,
        normalize=settings.normalize,
    )
    environment = make_environment(
        env_args.env_mode, encoder.encode_documents, data.num_docs, env_args.config(seed=training_args.seed)
    )
    reward = RetrievalRewardFunction(
        data,
        make_reward(reward_args.reward_name, k=reward_args.reward_k),
        environment,
        encoder,
        prompts,
        missing_token_mode=reward_args.missing_token_mode,
        missing_token_penalty=reward_args.missing_token_penalty,
        contrastive_negatives=reward_args.rl_contrastive_negatives,
    )
    tokenizer.padding_side = "left"  # TRL expects left padding for generation
    trainer = SearchR3GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=training_args,
        train_dataset=data.to_dataset(),
        processing_class=tokenizer,
        peft_config=lora_config(model_args) if use_lora else None,
        retrieval_reward=reward,
        prompt_builder=prompts,
        contrastive_weight=reward_args.rl_contrastive_weight,
        contrastive_temperature=reward_args.rl_contrastive_temperature,
    )
    return RLSetup(trainer=trainer, reward=reward, data=data, prompts=prompts, stop_ids=stop_ids)


def save_final(setup: RLSetup, model_args: ModelArguments, output_dir: str | Path) -> Path:
    """Save the trained model where ``ReasoningEmbeddings.from_pretrained`` can load it.

    LoRA runs save the adapter (with the search-r3 settings in its ``config.json``) or, with
    ``merge_lora``, the merged model.
    """
    trainer = setup.trainer
    output = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload") and model_args.merge_lora:
        if trainer.accelerator.is_main_process:
            merged = model.merge_and_unload()
            merged.generation_config.eos_token_id = setup.stop_ids
            merged.save_pretrained(output, safe_serialization=True)
            setup.prompts.tokenizer.save_pretrained(output)
        return output
    trainer.save_model(str(output))
    if trainer.accelerator.is_main_process:
        training_args_as_json(output, trainer.args)
        if hasattr(model, "get_base_model"):  # adapter folder: keep the settings next to it
            model.get_base_model().config.save_pretrained(output)
        setup.prompts.tokenizer.save_pretrained(output)
    return output
