"""Resuming an interrupted RL run, and a real two-process (gloo) run under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from rl_helpers import rl_argv
from transformers import TrainerCallback

from search_r3_train.cli import main as train_main
from search_r3_train.rl.build import build_rl
from search_r3_train.rl.cli import parse_args


class CrashAtStep(TrainerCallback):
    """Raises at the end of a step, as a killed job would stop (after the last checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated interruption")


def test_resume_after_interruption_continues_the_step_count(emitting_model_dir, rl_collection_dir, tmp_path):
    out = tmp_path / "run"
    argv = rl_argv(
        emitting_model_dir, rl_collection_dir, out,
        "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2",
        "--use_lora", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj",
    )  # fmt: skip
    setup = build_rl(*parse_args(argv))
    setup.trainer.add_callback(CrashAtStep(3))
    with pytest.raises(RuntimeError, match="simulated interruption"):
        setup.trainer.train()
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()

    assert train_main(["rl", *argv, "--resume_from_checkpoint", "true"]) == 0
    summary = json.loads((out / "rl_summary.json").read_text())
    assert summary["global_step"] == 4
    assert (out / "checkpoint-4").is_dir()
    # the resumed process ran steps 3 and 4 only: a lazy full encode (with the restored policy) at
    # its first step, then one local refresh
    assert [(s["step"], s["full_refresh"]) for s in summary["env_steps"]] == [(0, True), (1, False)]
    assert summary["rollouts"] == 8
    logged = [h["step"] for h in summary["log_history"] if "reward" in h]
    assert logged == [1, 2, 3, 4]  # steps 1-2 restored from the checkpoint's state
    assert (out / "adapter_config.json").is_file()  # a LoRA run saves an adapter the core can load

    from search_r3 import ReasoningEmbeddings

    vectors = ReasoningEmbeddings.from_pretrained(out, device="cpu").encode_documents(["wing lift"])
    assert vectors.shape == (1, 64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_torchrun_on_cpu(emitting_model_dir, rl_collection_dir, tmp_path):
    out = tmp_path / "ddp"
    argv = rl_argv(emitting_model_dir, rl_collection_dir, out, "--rl_contrastive_weight", "0.5")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(_free_port())]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [*torchrun, "-m", "search_r3_train", "rl", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "rl_summary.json").read_text())
    assert summary["global_step"] == 2
    assert summary["rollouts"] == 8  # this rank's share: 2 steps x 4 of the 8 rollouts per step
    logs = [h for h in summary["log_history"] if "reward" in h]
    assert len(logs) == 2 and "contrastive_loss" in logs[-1]
    assert (out / "model.safetensors").is_file()
