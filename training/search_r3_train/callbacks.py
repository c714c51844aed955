"""Trainer callbacks: the end-of-run summary (steps, time, best dev score, where the model is)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback


@dataclass
class RunSummary:
    """What a finished run reports."""

    steps: int
    seconds: float
    best_metric: float | None
    metric_name: str | None
    best_checkpoint: str | None
    output_dir: str
    last_logs: dict[str, float]

    def format(self) -> str:
        minutes, seconds = divmod(round(self.seconds), 60)
        lines = [
            "search-r3-train sft finished",
            f"  steps:            {self.steps}",
            f"  time:             {minutes} min {seconds} s",
        ]
        if self.best_metric is not None:
            lines.append(f"  best dev {self.metric_name}: {self.best_metric:.4f}")
        if self.best_checkpoint:
            lines.append(f"  best checkpoint:  {self.best_checkpoint}")
        for key in ("loss", "loss_lm", "loss_kl", "loss_infonce", "loss_triplet"):
            if key in self.last_logs:
                lines.append(f"  last {key + ':':<14}{self.last_logs[key]:.4f}")
        lines.append(f"  model saved to:   {self.output_dir}")
        return "\n".join(lines)


class SummaryCallback(TrainerCallback):
    """Measures the wall time of ``train`` and keeps the latest training logs."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.seconds = 0.0
        self.last_logs: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if logs and "loss" in logs:
            self.last_logs = dict(logs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start

    def summary(self, state: Any, args: Any, output_dir: str) -> RunSummary:
        return RunSummary(
            steps=state.global_step,
            seconds=self.seconds,
            best_metric=state.best_metric,
            metric_name=(args.metric_for_best_model or "").removeprefix("eval_") or None,
            best_checkpoint=state.best_model_checkpoint,
            output_dir=output_dir,
            last_logs=self.last_logs,
        )
