"""``search-r3-train rl``: GRPO with a retrieval reward, from a stage-1 model on a collection."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from search_r3_train.arguments import DataArguments, ModelArguments, parse_config
from search_r3_train.rl.arguments import EnvironmentArguments, RewardArguments, RLDataArguments
from search_r3_train.run_sft import resolve_resume

logger = logging.getLogger(__name__)

EXAMPLES = """examples:
  search-r3-train rl --config configs/rl.yaml --model_name_or_path runs/sft --output_dir runs/rl
  search-r3-train rl --config configs/rl_smollm2_cpu.yaml --max_steps 20 --reward_name ndcg
  search-r3-train rl --config configs/rl.yaml --env_mode naive          # re-encode the corpus every step
  search-r3-train rl --config configs/rl.yaml --rl_contrastive_weight 0.1
  accelerate launch -m search_r3_train rl --config configs/rl.yaml      # several GPUs
  torchrun --nproc_per_node 2 -m search_r3_train rl --config configs/rl.yaml --use_cpu true

Every field can be set in the flat YAML file given by --config and overridden with --field value.
Data: --train_file COLLECTION_FOLDER (BEIR, TREC or Cranfield layout) with --train_split train; each
rollout is scored by ranking the whole corpus. The start model must contain <|embed_token|>.
Resume an interrupted run: --resume_from_checkpoint true (last checkpoint in output_dir) or a path.
vLLM rollouts: --use_vllm true (TRL's vLLM integration; the embedding is still read from the policy).
"""


def build_parser():
    """The ``TrlParser`` over model, data, reward, environment and GRPO arguments."""
    from trl import TrlParser

    from search_r3_train.rl.build import RLConfig

    return TrlParser(
        (ModelArguments, DataArguments, RLDataArguments, RewardArguments, EnvironmentArguments, RLConfig),
        prog="search-r3-train rl",
        description="Stage 2: GRPO over reasoning rollouts, rewarded by the retrieval quality of the "
        "embedding each rollout ends in, scored in a locally refreshed corpus environment.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse_args(argv: Sequence[str]) -> tuple:
    """Parse ``--config FILE`` and ``--field value`` overrides into the six dataclasses."""
    return parse_config(build_parser(), list(argv))


def run(args: tuple) -> dict:
    """Train and save; returns the run summary (also written to ``output_dir/rl_summary.json``)."""
    from search_r3_train.rl.build import build_rl, save_final

    model_args, *_, training_args = args
    checkpoint = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    setup = build_rl(*args)
    result = setup.trainer.train(resume_from_checkpoint=checkpoint)
    output = save_final(setup, model_args, training_args.output_dir)
    summary = run_summary(setup, result)
    if setup.trainer.accelerator.is_main_process:
        (output / "rl_summary.json").write_text(json.dumps(summary, indent=2))
        logger.info("RL done: %s", json.dumps({k: v for k, v in summary.items() if k != "log_history"}))
    return summary


def run_summary(setup, result) -> dict:
    """Figures of a run: rewards, emitted-token share, environment work."""
    env = setup.reward.environment
    counters = setup.reward.counters
    history = setup.trainer.state.log_history
    return {
        "global_step": setup.trainer.state.global_step,
        "train_loss": getattr(result, "training_loss", None),
        "rollouts": counters.rollouts,
        "emitted_fraction": counters.emitted_fraction,
        "mean_reward": sum(counters.rewards) / len(counters.rewards) if counters.rewards else None,
        "num_docs": env.num_docs,
        "rows_encoded": env.total_rows_encoded,
        "full_refreshes": env.full_refreshes,
        "env_steps": [s.as_dict() for s in env.history],
        "log_history": history,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``search-r3-train rl``; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
