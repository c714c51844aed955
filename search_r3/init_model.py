"""Turn an instruction-tuned causal LM into an untrained search-r3 model folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from search_r3.saving import save_model_folder
from search_r3.settings import SearchR3Settings

logger = logging.getLogger(__name__)


def add_embed_token(model: Any, tokenizer: Any, embed_token: str) -> int:
    """Add the embed token as a special token; grow the embeddings only if no row is free.

    The new row starts at the mean of the existing input embeddings (and output rows likewise),
    which keeps the untrained model's first outputs sensible.
    """
    if embed_token not in tokenizer.get_vocab():
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
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from search_r3.devices import resolve_dtype

    settings = settings or SearchR3Settings()
    tokenizer = AutoTokenizer.from_pretrained(str(base), trust_remote_code=False, **hub_kwargs)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{base} has no chat template. search-r3 needs an instruction-tuned model; pass "
            "chat_template=... (CLI: --chat-template FILE) if you know the right one."
        )
    model = AutoModelForCausalLM.from_pretrained(
        str(base), dtype=resolve_dtype(dtype, "cpu"), trust_remote_code=False, **hub_kwargs
    )
    token_id = add_embed_token(model, tokenizer, settings.embed_token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    output = save_model_folder(model, tokenizer, settings, output)
    logger.info("Wrote search-r3 model to %s (embed token id %d).", output, token_id)
    return output
