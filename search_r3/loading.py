"""Reading a search-r3 model folder (or Hub id) into a transformers model and tokenizer.

One place for the loading half of the model lifecycle (`search_r3.saving` is the writing
half); ``ReasoningEmbeddings``, the sentence-transformers module and the shipped-model builder
all load through `load_model_and_tokenizer`, and nothing here imports them back.

Loading runs no code from the folder (``trust_remote_code=False``) and reads weights from
safetensors only. A folder holding a LoRA adapter (``adapter_config.json``) is merged onto its
base; an adapter whose base is another adapter is merged in turn, and a chain that comes back
to a folder it already passed (A -> A, A -> B -> A) is refused at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from search_r3.devices import resolve_dtype
from search_r3.errors import ModelLoadError

logger = logging.getLogger(__name__)

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")

#: Most adapters stacked on one another before loading gives up (a real chain is 1-3 deep).
MAX_ADAPTER_DEPTH = 16


def load_model_and_tokenizer(
    source: str,
    *,
    device: str,
    dtype: str | torch.dtype | None = None,
    hub: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """The causal LM (on ``device``, in eval mode) and tokenizer of a search-r3 folder or Hub id.

    Args:
        source: Local folder or Hub id (shipped short names are resolved by the caller).
        device: Where the model goes.
        dtype: A dtype name or torch dtype; default: per device (see ``resolve_dtype``).
        hub: ``revision``, ``token`` and ``local_files_only`` for Hub downloads.

    Raises:
        ModelLoadError: Missing folder, pickle-only weights, an adapter cycle, or any file that
            transformers or peft cannot read.

    Example:
        ```python
        model, tokenizer = load_model_and_tokenizer("./my-model", device="cpu")
        ```
    """
    torch_dtype = resolve_dtype(dtype, device)
    hub = dict(hub or {})
    adapter_chain(source)  # every folder checked, and cycles refused, before anything loads
    model, tokenizer = _load(source, torch_dtype, hub)
    model.to(device)
    model.eval()
    return model, tokenizer


def adapter_chain(source: str) -> list[str]:
    """``source``, its base, that base's base... down to the first model that is not an adapter.

    Raises:
        ModelLoadError: A folder is missing or holds pickle weights only, the chain comes back to a
            folder it already passed (an adapter cycle), or it is deeper than ``MAX_ADAPTER_DEPTH``.
    """
    chain: list[str] = []
    keys: list[str] = []
    current: str | None = source
    while current is not None:
        check_local_source(current)
        path = Path(current).expanduser()
        key = str(path.resolve()) if path.exists() else current
        if key in keys:
            loop = " -> ".join([*chain[keys.index(key) :], current])
            raise ModelLoadError(
                f"Adapter cycle: {loop}. Each adapter's base_model_name_or_path (adapter_config.json) "
                "must name the model it was trained on, never itself or an adapter that leads back to it."
            )
        if len(chain) > MAX_ADAPTER_DEPTH:
            raise ModelLoadError(
                f"{source!r} stacks more than {MAX_ADAPTER_DEPTH} adapters; merge them into one folder first."
            )
        chain.append(current)
        keys.append(key)
        current = adapter_base(current)
    return chain


def _load(source: str, torch_dtype: torch.dtype, hub: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = adapter_base(source)
    # An adapter folder normally carries the tokenizer (with the embed token); else the nearest
    # folder down the chain that has one (the base model's, at the latest).
    chain = adapter_chain(source)
    tokenizer_source = next((folder for folder in chain if has_tokenizer(folder)), chain[-1])
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=False, **hub)
        if base and adapter_base(base):  # an adapter trained on an adapter: merge both
            model, _ = _load(base, torch_dtype, hub)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                base or source, dtype=torch_dtype, use_safetensors=True, trust_remote_code=False, **hub
            )
        if base:
            model = apply_adapter(model, source, len(tokenizer), hub)
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as exc:
        raise ModelLoadError(
            f"Could not load a search-r3 model from {source!r}: {' '.join(str(exc).split())} "
            "Check the path or Hub id; a local folder needs config.json, tokenizer files and "
            "*.safetensors weights (make one with `search-r3 init BASE OUTPUT`). A damaged file "
            "(e.g. an interrupted download or copy) must be fetched or written again."
        ) from exc
    return model, tokenizer


def check_local_source(source: str) -> None:
    """Clear errors for a local path that is missing or holds only pickle weights."""
    path = Path(source).expanduser()
    if not path.exists():
        if path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
            raise ModelLoadError(
                f"No model folder at {source!r}. Pass an existing folder (make one with "
                "`search-r3 init BASE OUTPUT`) or a Hugging Face Hub id such as 'ytgui/Search-R3.0-Small'."
            )
        return  # a Hub id
    if not path.is_dir():
        raise ModelLoadError(f"{source!r} is a file; pass the model folder that contains it.")
    files = [f.name for f in path.iterdir() if f.is_file()]
    has_safetensors = any(f.endswith(".safetensors") for f in files)
    if not has_safetensors and any(f.endswith(_PICKLE_SUFFIXES) for f in files):
        raise ModelLoadError(
            f"{source!r} holds PyTorch pickle weights (*.bin/*.pt) but no *.safetensors. search-r3 never "
            "loads pickle files (they can run code). Convert it once where you trust the file: "
            "`AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)` writes safetensors."
        )


def has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))


def adapter_base(source: str) -> str | None:
    """Base model named by a local PEFT adapter folder, if ``source`` is one."""
    config = Path(source).expanduser() / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{config} is not a readable adapter config (needs a base_model_name_or_path): {exc}"
        ) from exc
    if not isinstance(base, str) or not base:
        raise ModelLoadError(f"{config}: base_model_name_or_path must name the base model folder or Hub id.")
    return base


def apply_adapter(model: Any, source: str, vocab_size: int, hub: dict[str, Any]) -> Any:
    """Merge the LoRA adapter in ``source`` onto ``model`` (which grows to ``vocab_size`` rows)."""
    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelLoadError(
            f"{source} is a LoRA adapter; loading it needs peft: pip install 'search-r3[peft]'."
        ) from exc
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        model.resize_token_embeddings(vocab_size)
    model = PeftModel.from_pretrained(model, source, **{k: v for k, v in hub.items() if v is not None})
    config = Path(source) / "config.json"
    if config.is_file():  # the adapter folder keeps the search-r3 settings of the trained model
        stored = json.loads(config.read_text(encoding="utf-8")).get("search_r3")
        if stored is not None:
            model.config.search_r3 = stored
    return model.merge_and_unload()


def secure_embed_token(tokenizer: Any, embed_token: str) -> None:
    """Make sure user text can never produce the embed token's id.

    The prompts tokenise user text with special-token parsing off, which turns a *special*
    token's string into ordinary pieces. A folder whose embed token was added as a plain
    (non-special) token would let ``"<|embed_token|>"`` inside a document become the embed id.
    Such a tokenizer is repaired here (the token is marked special, keeping its id) with a
    warning; if user text still yields the id, loading fails.

    Raises:
        ModelLoadError: The tokenizer cannot be made to keep the token out of user text.
    """
    vocab = tokenizer.get_vocab()
    if embed_token not in vocab:
        return  # PromptBuilder raises MissingEmbedTokenError with the fix
    embed_id = int(vocab[embed_token])
    if _user_text_yields(tokenizer, embed_token, embed_id):
        logger.warning(
            "%s: %r is not a special token, so user text containing it would be read as the embed "
            "token; marking it special (same id). Save the model again to store the fix.",
            getattr(tokenizer, "name_or_path", "") or "tokenizer",
            embed_token,
        )
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [embed_token]}, replace_extra_special_tokens=False
        )
        if int(tokenizer.convert_tokens_to_ids(embed_token)) != embed_id or _user_text_yields(
            tokenizer, embed_token, embed_id
        ):
            raise ModelLoadError(
                f"The tokenizer turns the text {embed_token!r} into the embed token's id, and marking it "
                "special did not stop that; this folder is unsafe. Make the model again with "
                "`search-r3 init BASE OUTPUT`."
            )


def _user_text_yields(tokenizer: Any, embed_token: str, embed_id: int) -> bool:
    probe = f"a {embed_token}b{embed_token} {embed_token}"
    ids = tokenizer(probe, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return embed_id in ids
