"""Models trained by this project and shipped inside the package, loadable by a short name.

A shipped model is a small LoRA adapter (``search_r3/models/<name>/``) over a base that works
offline (`search_r3.offline_models`). On first use the base is imported, turned into an
untrained search-r3 folder, the adapter is merged onto it, and the result is cached under the
search-r3 cache folder (keyed by the adapter's hash, so a new adapter makes a new folder).
Afterwards the name loads like any local folder:

```python
ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m")
load_sentence_transformer("search-r3-smollm2-135m")
```
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from search_r3 import offline_models
from search_r3.errors import ModelLoadError
from search_r3.init_model import init_model
from search_r3.loading import load_model_and_tokenizer
from search_r3.saving import save_model_folder
from search_r3.settings import SearchR3Settings

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class PretrainedModel:
    """A model this project trained and ships as an adapter.

    Attributes:
        name: The short name users pass to ``from_pretrained``.
        base: Name of its base in `search_r3.offline_models.OFFLINE_MODELS`.
        description: One line for listings and errors.
        adapter: Folder of the adapter when it is not shipped inside the package.
    """

    name: str
    base: str
    description: str
    adapter: Path | None = None

    @property
    def adapter_dir(self) -> Path:
        """Folder of the adapter: ``adapter`` when set, else ``search_r3/models/<name>`` in the package."""
        if self.adapter is not None:
            return Path(self.adapter)
        return Path(str(resources.files("search_r3").joinpath("models", self.name)))


PRETRAINED_MODELS: dict[str, PretrainedModel] = {
    "search-r3-smollm2-135m": PretrainedModel(
        name="search-r3-smollm2-135m",
        base="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct trained by search-r3-train (SFT then RL) on Cranfield; "
        "works offline (docs/model-card.md)",
    ),
}


def is_pretrained_name(name_or_path: str) -> bool:
    """True for a registered short name that is not also a local path."""
    return name_or_path in PRETRAINED_MODELS and not Path(name_or_path).exists()


def resolve_model_source(name_or_path: str) -> str:
    """The folder to load for a short name (built once), else ``name_or_path`` unchanged."""
    if is_pretrained_name(name_or_path):
        return str(pretrained_model_path(name_or_path))
    return name_or_path


def _adapter_digest(adapter_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (ADAPTER_WEIGHTS, "adapter_config.json"):
        digest.update((adapter_dir / name).read_bytes())
    return digest.hexdigest()[:12]


def pretrained_model_path(name: str, build: bool = True) -> Path:
    """Cached, merged search-r3 folder of the shipped model ``name``, made on first use.

    Args:
        name: A key of `PRETRAINED_MODELS`.
        build: Make the folder if it is missing (about a minute once: base import, merge).

    Raises:
        ModelLoadError: Unknown name, or the adapter is not in this copy of the package.
    """
    spec = PRETRAINED_MODELS.get(name)
    if spec is None:
        raise ModelLoadError(
            f"Unknown search-r3 model name {name!r}; shipped models: {sorted(PRETRAINED_MODELS)}."
        )
    adapter = spec.adapter_dir
    if not (adapter / ADAPTER_WEIGHTS).is_file():
        raise ModelLoadError(
            f"The adapter of {name!r} is missing from this copy of search-r3 ({adapter}). Reinstall "
            "the package, or train it again with `make model` (training/recipes/smollm2-135m.sh)."
        )
    target = offline_models.cache_dir() / "pretrained" / f"{name}-{_adapter_digest(adapter)}"
    if not build or (target / "config.json").is_file():
        return target
    _build(spec, adapter, target)
    return target


def _build(spec: PretrainedModel, adapter: Path, target: Path) -> None:
    print(f"search-r3: preparing {spec.name} in {target} (once, about a minute)...", flush=True)
    base = offline_models.offline_model_path(spec.base)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        untrained = init_model(base, Path(tmp) / "untrained")
        staged = Path(tmp) / "adapter"
        shutil.copytree(adapter, staged)
        config_path = staged / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = str(untrained)
        config_path.write_text(json.dumps(config, indent=2))
        model, tokenizer = load_model_and_tokenizer(str(staged), device="cpu", dtype="float32")
        save_model_folder(
            model, tokenizer, SearchR3Settings.from_model_config(model.config), Path(tmp) / "merged"
        )
        readme = adapter / "README.md"
        if readme.is_file():
            shutil.copy(readme, Path(tmp) / "merged" / "README.md")
        try:
            (Path(tmp) / "merged").replace(target)  # appears whole or not at all
        except OSError:
            if not (target / "config.json").is_file():  # else another process made it meanwhile
                raise
    logger.info("Made %s from %s + %s.", target, spec.base, adapter)
