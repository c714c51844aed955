"""Options in the spelling of other embedding frameworks, mapped onto search-r3's own.

The LangChain and LlamaIndex adapters accept the keywords users copy from
``HuggingFaceEmbeddings`` and ``HuggingFaceEmbedding`` (``model_kwargs={"device": "cpu"}``,
``torch_dtype=...``, ``normalize_embeddings=True``); this module turns them into
[`ReasoningEmbeddings.from_pretrained`][search_r3.ReasoningEmbeddings.from_pretrained] keywords
and checks them, so a mistake is one clear error instead of a ``TypeError`` deep in a loader.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from search_r3.errors import InvalidInputError
from search_r3.model import ReasoningEmbeddings

_NOT_OPTIONS = {"self", "cls", "kwargs", "model_name_or_path", "model", "tokenizer", "settings"}


def loader_keys() -> frozenset[str]:
    """Every keyword `ReasoningEmbeddings.from_pretrained` accepts (its own and the constructor's)."""
    keys = set(inspect.signature(ReasoningEmbeddings.from_pretrained).parameters)
    keys |= set(inspect.signature(ReasoningEmbeddings.__init__).parameters)
    return frozenset(keys - _NOT_OPTIONS)


def check_keys(name: str, given: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Raise `InvalidInputError` naming the unknown keys of ``given`` and the accepted ones."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidInputError(
            f"{name} does not take {', '.join(unknown)}; accepted keys: {', '.join(sorted(allowed))}."
        )


def loader_kwargs(model_kwargs: Mapping[str, Any], **explicit: Any) -> dict[str, Any]:
    """``from_pretrained`` keywords from a framework's ``model_kwargs`` and explicit arguments.

    Explicit arguments that are ``None`` are left out. A key given both ways with different
    values is an error (never Python's "got multiple values for keyword argument");
    ``torch_dtype`` is read as ``dtype`` and a torch dtype becomes its name;
    ``trust_remote_code=True`` is refused, since search-r3 never runs code from a model folder;
    unknown keys are named together with the accepted ones.

    Example:
        ```python
        loader_kwargs({"device": "cpu", "torch_dtype": "bfloat16"}, batch_size=16)
        # {"device": "cpu", "dtype": "bfloat16", "batch_size": 16}
        ```
    """
    load = dict(model_kwargs)
    if "torch_dtype" in load:
        if "dtype" in load and load["dtype"] != load["torch_dtype"]:
            raise InvalidInputError("both dtype and torch_dtype are given; pass only dtype.")
        load["dtype"] = load.pop("torch_dtype")
    if load.pop("trust_remote_code", False):
        raise InvalidInputError(
            "trust_remote_code=True is not supported: search-r3 never runs code from a model "
            "folder (every supported architecture is built into transformers). Remove it."
        )
    for key, value in explicit.items():
        if value is None:
            continue
        if key in load and load[key] != value:
            raise InvalidInputError(
                f"{key} is given twice with different values ({value!r} and model_kwargs "
                f"{load[key]!r}); pass it once."
            )
        load[key] = value
    check_keys("model_kwargs", load, loader_keys())
    if load.get("dtype") is not None:
        load["dtype"] = dtype_name(load["dtype"])
    return load


def dtype_name(dtype: Any) -> str:
    """``"bfloat16"`` for ``torch.bfloat16`` or ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
