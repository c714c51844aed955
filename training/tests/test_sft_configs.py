"""Every shipped SFT config parses into the argument dataclasses (TrlParser: YAML + overrides)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search_r3_train.sft import parse_args

CONFIGS = Path(__file__).resolve().parents[1] / "search_r3_train" / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("sft_*.yaml")))
def test_shipped_config_parses_and_overrides_win(name: str, tmp_path: Path):
    model, data, loss, training = parse_args(
        # bf16 is switched off so that GPU configs parse on a CPU-only machine too
        ["--config", str(CONFIGS / name), "--output_dir", str(tmp_path), "--infonce_temperature", "0.07"]
        + ["--bf16", "false"]
    )
    raw = yaml.safe_load((CONFIGS / name).read_text())
    assert loss.infonce_temperature == 0.07  # command line beats the file
    assert training.output_dir == str(tmp_path)
    numeric = {"learning_rate", "per_device_train_batch_size", "max_steps", "seed", "save_steps"}
    for key, value in raw.items():
        if key in ("output_dir", "infonce_temperature", "bf16"):
            continue
        ours = next((o for o in (model, data, loss) if hasattr(o, key)), None)
        if ours is not None:
            assert getattr(ours, key) == value, key
        elif key in numeric:
            assert getattr(training, key) == value, key
        else:
            assert hasattr(training, key), key


def test_accelerate_configs_are_valid_yaml():
    for path in (CONFIGS / "accelerate").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        assert config["distributed_type"] in {"DEEPSPEED", "FSDP"}
