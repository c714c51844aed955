"""The v2 recipe's configs parse, switch the distillation term on and chain their stages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from search_r3_train.sft import parse_args

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training" / "search_r3_train" / "configs" / "recipes" / "smollm2-135m-v2"
RECIPE = ROOT / "training" / "recipes" / "smollm2-135m-v2.sh"


@pytest.mark.parametrize("name", ["sft.yaml", "sft_reasoning.yaml"])
def test_v2_sft_configs_parse_with_distillation(name: str, tmp_path: Path):
    _, _, loss, training = parse_args(
        ["--config", str(CONFIGS / name), "--output_dir", str(tmp_path), "--bf16", "false"]
    )
    loss.check()
    raw = yaml.safe_load((CONFIGS / name).read_text())
    assert loss.loss_weight_distill == raw["loss_weight_distill"] > 0
    assert raw["negatives_per_query"] >= 1  # a listwise group needs more than the positive
    assert training.max_steps == raw["max_steps"]


def test_v2_stages_chain_and_the_script_parses():
    stage1 = yaml.safe_load((CONFIGS / "sft.yaml").read_text())
    stage1b = yaml.safe_load((CONFIGS / "sft_reasoning.yaml").read_text())
    rl = yaml.safe_load((CONFIGS / "rl.yaml").read_text())
    assert stage1b["model_name_or_path"] == stage1["output_dir"]
    assert rl["model_name_or_path"] == stage1b["output_dir"]
    assert rl["reward_name"] == "dcg_scaled"
    assert subprocess.run(["bash", "-n", str(RECIPE)], capture_output=True).returncode == 0
