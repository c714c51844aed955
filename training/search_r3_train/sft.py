"""``search-r3-train sft``: parse the config, build data, model and trainer, train, save."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from search_r3_train.arguments import DataArguments, LossArguments, ModelArguments, parse_config

EXAMPLES = """examples:
  search-r3-train sft --config configs/sft_tiny_cpu.yaml --model_name_or_path ./tiny-r3
  search-r3-train sft --config configs/sft_smollm2_cpu.yaml --output_dir /tmp/sft --max_steps 300
  search-r3-train sft --config configs/sft_qwen2.5-1.5b_lora.yaml --train_file train.jsonl
  accelerate launch --config_file configs/accelerate/zero2.yaml -m search_r3_train sft --config X.yaml
  torchrun --nproc_per_node 2 -m search_r3_train sft --config X.yaml --use_cpu true

Every field can be set in the flat YAML file given by --config and overridden with --field value.
Training data: --train_file data.jsonl (lines {"query", "pos": [...], "neg": [...], "reasoning"?})
or --train_file COLLECTION_FOLDER (BEIR / Cranfield; judged documents as positives, BM25 negatives).
Resume an interrupted run: --resume_from_checkpoint true (last checkpoint in output_dir) or a path.
"""


def build_parser():
    """The ``TrlParser`` over model, data, loss and training arguments."""
    from trl import TrlParser

    from search_r3_train.trainer import SFTConfig

    return TrlParser(
        (ModelArguments, DataArguments, LossArguments, SFTConfig),
        prog="search-r3-train sft",
        description="Stage 1: contrastive supervised fine-tuning "
        "(L = w_lm·L_lm + w_kl·L_kl + w_nce·L_infonce + w_tri·L_triplet).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse_args(argv: Sequence[str]) -> tuple[ModelArguments, DataArguments, LossArguments, object]:
    """Parse ``--config FILE`` and ``--field value`` overrides into the four dataclasses."""
    model_args, data_args, loss_args, training_args = parse_config(build_parser(), list(argv))
    return model_args, data_args, loss_args, training_args


def main(argv: Sequence[str]) -> int:
    """Entry point of ``search-r3-train sft``; returns the exit code."""
    args = parse_args(argv)
    from search_r3_train.run_sft import run_sft

    run_sft(*args)
    return 0
