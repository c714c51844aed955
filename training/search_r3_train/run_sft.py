"""Stage 1 from parsed arguments: check data, load the model, train, save, summarise."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from search_r3_train.arguments import ConfigError, DataArguments, LossArguments, ModelArguments
from search_r3_train.callbacks import RunSummary, SummaryCallback

logger = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "last", "auto"}


def resolve_resume(value: Any, output_dir: str) -> str | None:
    """``resume_from_checkpoint`` of either stage: a path, or true/last for the newest checkpoint in
    output_dir (None, with a warning, when there is none yet); false/None -> None."""
    if value is None or value is False or str(value).lower() in {"", "false", "0", "no", "none"}:
        return None
    if value is True or str(value).lower() in _TRUE:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
        if last is None:
            logger.warning("No checkpoint in %s to resume from: starting from the beginning.", output_dir)
            return None
        check_checkpoint(last)
        return last
    if not Path(str(value)).is_dir():
        raise ConfigError(f"resume_from_checkpoint={value!r} is not a checkpoint folder.")
    check_checkpoint(str(value))
    return str(value)


def check_checkpoint(folder: str) -> None:
    """Refuse, with the fix, a checkpoint that an interrupted save left incomplete.

    Checks that ``trainer_state.json`` parses, that every ``*.safetensors`` header covers its
    file, and that every ``*.pt`` / ``*.pth`` (optimizer, scheduler, RNG states; torch zip files)
    is a whole zip archive. Reads headers only, so it costs milliseconds.
    """
    import zipfile

    from safetensors import SafetensorError, safe_open

    path = Path(folder)
    fix = (
        f"the checkpoint {path} is incomplete (an interrupted save?): delete it and resume from an earlier "
        f"checkpoint-N folder, or start again without resume_from_checkpoint"
    )
    state = path / "trainer_state.json"
    if not state.is_file():
        raise ConfigError(f"No trainer_state.json: {fix}.")
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"trainer_state.json does not parse ({exc}): {fix}.") from None
    for file in sorted(path.rglob("*.safetensors")):
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"{file.name} is damaged ({' '.join(str(exc).split())}): {fix}.") from None
    for file in sorted([*path.glob("*.pt"), *path.glob("*.pth")]):
        if not zipfile.is_zipfile(file):
            raise ConfigError(f"{file.name} is truncated or damaged: {fix}.")


def check_config(data_args: DataArguments, loss_args: LossArguments, training_args: Any) -> None:
    """Fail early, with the fix, on settings that would only break later."""
    loss_args.check()
    if not data_args.train_file:
        raise ConfigError(
            "Set train_file: a JSON lines file ({query, pos, neg, reasoning?} per line) or a "
            "collection folder."
        )
    if data_args.negatives_per_query < 0:
        raise ConfigError("negatives_per_query must be >= 0.")
    if data_args.negatives_per_query == 0 and loss_args.loss_weight_triplet > 0:
        logger.warning("negatives_per_query is 0: the triplet term has no negatives and is left out.")


def run_sft(
    model_args: ModelArguments,
    data_args: DataArguments,
    loss_args: LossArguments,
    training_args: Any,
    callbacks: list[Any] | None = None,
) -> RunSummary:
    """Train stage 1 and save the model into ``training_args.output_dir``; returns the summary.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (logging, early stopping...).
    """
    from search_r3_train.collator import SFTCollator
    from search_r3_train.data import ExampleDataset, load_dev_collection, load_training_examples
    from search_r3_train.export import save_trained_model
    from search_r3_train.modeling import load_for_training
    from search_r3_train.trainer import SFTTrainer

    check_config(data_args, loss_args, training_args)
    # a broken checkpoint fails now, not after the data and model loads
    checkpoint = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    examples = load_training_examples(
        data_args.train_file,
        data_args.train_split,
        data_args.split_fractions,
        data_args.split_seed,
        data_args.collection_negatives_depth,
    )
    dev = load_dev_collection(
        data_args.dev_file,
        data_args.train_file,
        data_args.dev_split,
        data_args.split_fractions,
        data_args.split_seed,
        data_args.max_dev_queries,
        data_args.max_dev_docs,
    )
    evaluating = str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"
    if evaluating and dev is None:
        raise ConfigError(
            "eval_strategy is set but there is no dev data: set dev_file (a collection folder or JSON "
            "lines), train on a collection folder, or set eval_strategy: no."
        )
    if training_args.load_best_model_at_end and not evaluating:
        raise ConfigError("load_best_model_at_end needs evaluation: set eval_strategy (steps or epoch).")
    if model_args.use_lora and model_args.train_top_layers is not None:
        raise ConfigError("train_top_layers is for full fine-tuning; with use_lora leave it unset.")
    loaded = load_for_training(model_args, kl_reference=loss_args.loss_weight_kl > 0)
    if loaded.token_added and model_args.use_lora and not model_args.merge_lora:
        raise ConfigError(
            f"{model_args.model_name_or_path} has no embed token, so a LoRA adapter alone could not be "
            "loaded on it; run `search-r3 init` on it first, or set merge_lora: true."
        )
    try:  # a limit that leaves no room for text fails here, not in the collator
        loaded.prompts.reasoning_prompt_ids("x")
        loaded.prompts.document_ids("x")
    except ValueError as exc:
        raise ConfigError(f"text_max_length: {exc}") from exc
    collator = SFTCollator(
        loaded.prompts, data_args.negatives_per_query, loaded.pad_id, seed=training_args.seed
    )
    summary = SummaryCallback()
    trainer = SFTTrainer(
        args=training_args,
        train_dataset=ExampleDataset(examples),
        eval_dataset=list(dev.queries) if dev is not None else None,
        data_collator=collator,
        callbacks=[summary, *(callbacks or [])],
        loaded=loaded,
        loss_args=loss_args,
        group_size=collator.group_size,
        dev_collection=dev,
        eval_reasoning=data_args.eval_reasoning,
        eval_max_reasoning_tokens=data_args.eval_max_reasoning_tokens,
    )
    if trainer.is_world_process_zero():
        docs = f", dev: {len(dev.queries)} queries x {len(dev.corpus)} documents" if dev is not None else ""
        print(f"training on {len(examples)} queries ({collator.group_size} documents each per step){docs}")
    trainer.train(resume_from_checkpoint=checkpoint)
    output = save_trained_model(trainer, model_args.use_lora, model_args.merge_lora, model_args.model_dtype)
    result = summary.summary(trainer.state, training_args, str(output))
    if trainer.is_world_process_zero():
        record = {"model": asdict(model_args), "data": asdict(data_args), "loss": asdict(loss_args)}
        (Path(output) / "search_r3_train_config.json").write_text(json.dumps(record, indent=2))
        print(result.format())
    return result
