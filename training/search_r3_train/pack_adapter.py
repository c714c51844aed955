"""``search-r3-train pack-adapter``: several LoRA adapters trained one after another, as one adapter.

Stage 2 trains a LoRA adapter on the stage-1 model with its adapter merged, so the trained model
is ``W + s1·B1·A1 + s2·B2·A2``. That sum is itself a LoRA of rank ``r1 + r2``:
``A = [A1; A2]``, ``B = [s1·B1, s2·B2]`` with scale 1, so both stages ship as one small adapter
over the untrained start (exact up to the storage dtype). Trainable token rows (the embed token's
embedding) are taken from the last adapter that has them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from search_r3.errors import SearchR3Error

logger = logging.getLogger(__name__)

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
_LORA_A, _LORA_B = ".lora_A.weight", ".lora_B.weight"

EXAMPLES = """examples:
  # the shipped model: stage-1 (SFT) adapter, then the stage-2 (RL) adapter trained on top of it
  search-r3-train pack-adapter runs/recipe/sft runs/recipe/rl -o search_r3/models/search-r3-smollm2-135m
  search-r3-train pack-adapter runs/sft -o packed --dtype float32   # just re-save one adapter
"""


class AdapterPackError(SearchR3Error, ValueError):
    """The adapters cannot be combined (not LoRA, DoRA, or unknown tensors)."""


def _scale(config: dict[str, Any]) -> float:
    r, alpha = config["r"], config["lora_alpha"]
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def _check(config: dict[str, Any], folder: Path) -> None:
    if config.get("peft_type") != "LORA":
        raise AdapterPackError(f"{folder} is a {config.get('peft_type')} adapter; only LoRA can be packed.")
    if config.get("use_dora"):
        raise AdapterPackError(
            f"{folder} uses DoRA, whose update is not a low-rank sum; it cannot be packed."
        )
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterPackError(f"{folder} has per-module ranks (rank_pattern/alpha_pattern); not supported.")


def read_adapter(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An adapter folder's config and tensors (safetensors only)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise AdapterPackError(
            f"{folder} is not a LoRA adapter folder (needs {CONFIG} and {WEIGHTS}); train with "
            "use_lora: true and merge_lora: false to get one."
        )
    config = json.loads((folder / CONFIG).read_text())
    _check(config, folder)
    return config, load_file(str(folder / WEIGHTS))


def pack_adapters(
    folders: Sequence[str | Path],
    output: str | Path,
    dtype: torch.dtype = torch.float16,
    base: str | None = None,
) -> Path:
    """Write one LoRA adapter equal to applying ``folders`` in order; returns ``output``.

    The output's ``base_model_name_or_path`` is ``base`` or else the first adapter's base, and its
    ``config.json`` (the search-r3 settings) is taken from the last folder that has one.
    """
    from safetensors.torch import save_file

    if not folders:
        raise AdapterPackError("Name at least one adapter folder.")
    adapters = [read_adapter(f) for f in folders]
    for _, tensors in adapters:
        for key in tensors:
            if not key.endswith((_LORA_A, _LORA_B)) and "trainable_tokens" not in key:
                raise AdapterPackError(
                    f"Unexpected tensor {key!r} in an adapter; only LoRA A/B and token rows."
                )
    prefixes = sorted({k[: -len(_LORA_A)] for _, t in adapters for k in t if k.endswith(_LORA_A)})
    packed: dict[str, torch.Tensor] = {}
    for prefix in prefixes:
        # a module one stage did not adapt gets a zero block of that stage's rank
        fan_in = next(t[prefix + _LORA_A].shape[1] for _, t in adapters if prefix + _LORA_A in t)
        fan_out = next(t[prefix + _LORA_B].shape[0] for _, t in adapters if prefix + _LORA_B in t)
        a_parts, b_parts = [], []
        for config, tensors in adapters:
            r = config["r"]
            a, b = tensors.get(prefix + _LORA_A), tensors.get(prefix + _LORA_B)
            if a is None or b is None:
                a, b = torch.zeros(r, fan_in), torch.zeros(fan_out, r)
            a_parts.append(a.float())
            b_parts.append(b.float() * _scale(config))
        packed[prefix + _LORA_A] = torch.cat(a_parts, dim=0).to(dtype).contiguous()
        packed[prefix + _LORA_B] = torch.cat(b_parts, dim=1).to(dtype).contiguous()
    for _, tensors in adapters:  # token rows hold values, not deltas: the last stage's win
        for key, value in tensors.items():
            if "trainable_tokens" in key:
                packed[key] = value.to(dtype).contiguous()

    first, last = adapters[0][0], adapters[-1][0]
    rank = sum(config["r"] for config, _ in adapters)
    targets = [config["target_modules"] for config, _ in adapters]
    config = dict(last)
    config.update(
        r=rank,
        lora_alpha=rank,  # scale 1: the stage scales are folded into B
        use_rslora=False,
        base_model_name_or_path=base or first.get("base_model_name_or_path"),
        target_modules=targets[0] if all(t == targets[0] for t in targets) else _union(targets),
        trainable_token_indices=next(
            (c["trainable_token_indices"] for c, _ in reversed(adapters) if c.get("trainable_token_indices")),
            None,
        ),
    )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    save_file(packed, str(output / WEIGHTS), metadata={"format": "pt"})
    (output / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    settings = next(
        (Path(f) / "config.json" for f in reversed(folders) if (Path(f) / "config.json").is_file()), None
    )
    if settings is not None and settings.resolve() != (output / "config.json").resolve():
        shutil.copy(settings, output / "config.json")
    size = (output / WEIGHTS).stat().st_size
    logger.info("Packed %d adapter(s) into %s: rank %d, %.1f MB.", len(folders), output, rank, size / 1e6)
    return output


def _union(targets: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for target in targets:
        if isinstance(target, str):
            raise AdapterPackError(
                f"Adapters target different module sets ({targets}); pack adapters trained with the same "
                "lora_target_modules, or list module names explicitly."
            )
        names.extend(t for t in target if t not in names)
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search-r3-train pack-adapter",
        description="Combine LoRA adapters trained one after another (SFT, then RL) into one adapter.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("adapters", nargs="+", help="adapter folders in the order they were trained")
    parser.add_argument("-o", "--output", required=True, help="folder to write the packed adapter to")
    parser.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default="float16",
        help="storage dtype of the packed tensors (default float16: half the size, ~1e-3 relative error)",
    )
    parser.add_argument(
        "--base",
        default=None,
        help="base model recorded in the packed adapter_config.json (default: the first adapter's)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    output = pack_adapters(args.adapters, args.output, dtype=getattr(torch, args.dtype), base=args.base)
    size = (output / WEIGHTS).stat().st_size / 1e6
    print(f"packed {len(args.adapters)} adapter(s) into {output} ({size:.1f} MB)")
    return 0
