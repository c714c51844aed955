"""Turn an instruction-tuned causal LM into an untrained search-r3 model folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from search_r3.devices import resolve_dtype
from search_r3.errors import InvalidInputError, ModelLoadError
from search_r3.saving import save_model_folder
from search_r3.settings import SearchR3Settings

logger = logging.getLogger(__name__)


def add_embed_token(model: Any, tokenizer: Any, embed_token: str) -> int:
    """Add the embed token as a special token; grow the embeddings only if no row is free.

    The new row starts at the mean of the existing input embeddings (and output rows likewise),
    which keeps the untrained model's first outputs sensible.
    """
    # Special even when the base already has the string as a plain token: user text must never
    # produce its id (special tokens are split when user text is tokenised).
    if embed_token not in tokenizer.get_vocab() or embed_token not in tokenizer.all_special_tokens:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [embed_token]}, replace_extra_special_tokens=False
        )
    token_id = tokenizer.convert_tokens_to_ids(embed_token)
    rows = model.get_input_embeddings().weight.shape[0]
    if token_id >= rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            inputs = model.get_input_embeddings().weight
            inputs[token_id] = inputs[:rows].mean(dim=0)
            outputs = model.get_output_embeddings()
            if outputs is not None and outputs.weight.data_ptr() != inputs.data_ptr():
                outputs.weight[token_id] = outputs.weight[:rows].mean(dim=0)
    return int(token_id)


def init_model(
    base: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    settings: SearchR3Settings | None = None,
    dtype: str | torch.dtype = "float32",
    chat_template: str | None = None,
    **hub_kwargs: Any,
) -> Path:
    """Make a search-r3 model folder from ``base`` (a local folder or Hub id).

    Adds ``<|embed_token|>``, writes the prompt templates and settings into the model's own
    ``config.json`` (key ``search_r3``), and saves weights as safetensors.

    Returns:
        The output folder, ready for ``ReasoningEmbeddings.from_pretrained`` or training.

    Raises:
        InvalidInputError: ``output`` is a file, ``dtype`` is unknown, or the base has no chat template.
        ModelLoadError: The base cannot be read.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = settings or SearchR3Settings()
    if Path(output).exists() and not Path(output).is_dir():
        raise InvalidInputError(
            f"{output} is a file; pass a folder to write the model into (it is created if missing)."
        )
    torch_dtype = resolve_dtype(dtype, "cpu")  # checked before anything loads
    local = Path(base).expanduser()
    if not local.exists() and (local.is_absolute() or str(base).startswith((".", "~"))):
        raise ModelLoadError(
            f"No base model folder at {str(base)!r}; pass an existing folder, a Hub id such as "
            "Qwen/Qwen2.5-1.5B-Instruct, or an offline model name such as smollm2-135m-instruct."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base), trust_remote_code=False, **hub_kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"Could not read the tokenizer of base model {str(base)!r}: {' '.join(str(exc).split())} "
            "Pass a local folder, a Hub id, or an offline model name such as smollm2-135m-instruct."
        ) from exc
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidInputError(
            f"{base} has no chat template. search-r3 needs an instruction-tuned model; pass "
            "chat_template=... (CLI: --chat-template FILE) if you know the right one."
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(base), dtype=torch_dtype, use_safetensors=True, trust_remote_code=False, **hub_kwargs
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(
            f"Could not read the weights of base model {str(base)!r}: {' '.join(str(exc).split())} "
            "A base needs config.json and *.safetensors weights (pickle *.bin files are never loaded)."
        ) from exc
    token_id = add_embed_token(model, tokenizer, settings.embed_token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    output = save_model_folder(model, tokenizer, settings, output)
    logger.info("Wrote search-r3 model to %s (embed token id %d).", output, token_id)
    return output
