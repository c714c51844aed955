"""Helpers shared by the stage-2 tests (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from pathlib import Path


def rl_argv(model_dir: Path, collection_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """Command-line arguments of a short CPU run on the tiny model (overridable by ``extra``)."""
    return [
        "--model_name_or_path", str(model_dir),
        "--train_file", str(collection_dir),
        "--train_split", "all",
        "--output_dir", str(output_dir),
        "--max_steps", "2",
        "--per_device_train_batch_size", "4",
        "--num_generations", "4",
        "--max_completion_length", "8",
        "--learning_rate", "1e-3",
        "--use_cpu", "true",
        "--report_to", "none",
        "--gradient_checkpointing", "false",
        "--save_strategy", "no",
        "--missing_token_mode", "forced",
        "--missing_token_penalty", "-0.5",
        "--env_top_k", "4",
        "--env_graph_k", "3",
        "--env_refresh_neighbours", "2",
        "--env_probe_size", "4",
        "--seed", "7",
        "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip
