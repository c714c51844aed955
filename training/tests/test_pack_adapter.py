"""pack-adapter: two LoRA stages packed into one adapter give the model of both stages applied in turn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from search_r3 import ReasoningEmbeddings
from search_r3_train.pack_adapter import AdapterPackError, main, pack_adapters

TEXTS = ["a wing in a slipstream", "heat transfer at hypersonic speed", "buckling of thin shells"]


def encode(path: Path) -> np.ndarray:
    return ReasoningEmbeddings.from_pretrained(path, device="cpu", dtype="float32").encode_documents(TEXTS)


@pytest.fixture(scope="module")
def two_stages(
    tiny_llama_dir: Path, random_adapter, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, np.ndarray]:
    root = tmp_path_factory.mktemp("stages")
    first = random_adapter(tiny_llama_dir, root / "sft", seed=1, r=4, tokens=True)
    merged = ReasoningEmbeddings.from_pretrained(first, device="cpu", dtype="float32")
    merged.save_pretrained(root / "sft-merged")
    second = random_adapter(root / "sft-merged", root / "rl", seed=2, r=2, tokens=False)
    return first, second, encode(second)  # the second adapter loads onto the merged first stage


def test_packed_float32_equals_the_stages_applied_in_turn(two_stages, tmp_path: Path):
    first, second, expected = two_stages
    packed = pack_adapters([first, second], tmp_path / "packed", dtype=torch.float32)
    config = json.loads((packed / "adapter_config.json").read_text())
    assert config["r"] == 6 and config["lora_alpha"] == 6
    assert config["trainable_token_indices"]  # the embed token row of stage 1 travels along
    np.testing.assert_allclose(encode(packed), expected, atol=2e-5)
    # one stage alone is a different model: the comparison above can fail
    assert not np.allclose(encode(first), expected, atol=1e-3)


def test_packed_float16_is_half_the_size_and_close(two_stages, tmp_path: Path):
    first, second, expected = two_stages
    small = pack_adapters([first, second], tmp_path / "f16", base="some-base")
    large = pack_adapters([first, second], tmp_path / "f32", dtype=torch.float32)
    size = (small / "adapter_model.safetensors").stat().st_size
    assert size < 0.6 * (large / "adapter_model.safetensors").stat().st_size
    assert json.loads((small / "adapter_config.json").read_text())["base_model_name_or_path"] == "some-base"
    config = json.loads((small / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = json.loads((first / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ]
    (small / "adapter_config.json").write_text(json.dumps(config))
    cosine = (encode(small) * expected).sum(axis=1)
    assert cosine.min() > 0.999


def test_cli_packs_and_rejects_a_folder_without_an_adapter(two_stages, tmp_path: Path, capsys):
    first, second, _ = two_stages
    assert main([str(first), str(second), "-o", str(tmp_path / "out")]) == 0
    assert "packed 2 adapter(s)" in capsys.readouterr().out
    with pytest.raises(AdapterPackError, match="not a LoRA adapter folder"):
        main([str(tmp_path), "-o", str(tmp_path / "x")])
