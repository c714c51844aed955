"""Saving the trained model as a search-r3 folder (full weights, merged LoRA, or a LoRA adapter).

Every output holds the tokenizer, a ``config.json`` carrying the ``search_r3`` settings, and the
sentence-transformers metadata (``modules.json``...), so ``ReasoningEmbeddings.from_pretrained``
and ``search_r3.st_module.load_sentence_transformer(path)`` both load it (neither runs code from
the folder). An adapter folder records
its base model by absolute path (or Hub id); the core loader merges it on load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from search_r3.st_module import write_sentence_transformers_files

logger = logging.getLogger(__name__)


def absolute_base(adapter_dir: str | Path) -> None:
    """Point ``adapter_config.json`` at an absolute base path when the base is a local folder."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(config_path.read_text())
    base = config.get("base_model_name_or_path")
    if base and Path(base).exists() and not Path(base).is_absolute():
        config["base_model_name_or_path"] = str(Path(base).resolve())
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def finish_adapter_folder(peft_model: Any, settings: Any, output_dir: str | Path) -> None:
    """Make a saved adapter folder a search-r3 folder: base config with the settings."""
    absolute_base(output_dir)
    config = peft_model.get_base_model().config
    settings.write_to_model_config(config)
    config.save_pretrained(output_dir)


def merge_adapter_folder(adapter_dir: str | Path, output_dir: str | Path, dtype: str = "float32") -> Path:
    """Load base + adapter with the core loader (which merges) and save a plain search-r3 folder."""
    from search_r3 import ReasoningEmbeddings

    merged = ReasoningEmbeddings.from_pretrained(adapter_dir, device="cpu", dtype=dtype)
    return merged.save_pretrained(output_dir)


def training_args_as_json(folder: str | Path, args: Any) -> None:
    """The run's settings as JSON instead of the pickled ``training_args.bin`` (loading never unpickles)."""
    (Path(folder) / "training_args.bin").unlink(missing_ok=True)
    (Path(folder) / "training_args.json").write_text(args.to_json_string())


def save_trained_model(trainer: Any, use_lora: bool, merge_lora: bool, dtype: str = "float32") -> Path:
    """Save the trainer's (best) model into ``args.output_dir`` as a search-r3 folder.

    ``trainer.save_model`` gathers the weights under DeepSpeed / FSDP and writes on the main
    process; the extra files are added there too.
    """
    output_dir = Path(trainer.args.output_dir)
    loaded = trainer.loaded
    target = output_dir / "adapter" if use_lora and merge_lora else output_dir
    trainer.save_model(str(target))
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return output_dir
    training_args_as_json(target, trainer.args)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if use_lora:
        finish_adapter_folder(model, loaded.settings, target)
        if merge_lora:
            merge_adapter_folder(target, output_dir, dtype=dtype)
            logger.info("Merged the LoRA adapter into %s (adapter kept in %s).", output_dir, target)
            return output_dir
    write_sentence_transformers_files(output_dir)
    return output_dir
