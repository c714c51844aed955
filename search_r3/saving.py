"""Writing a search-r3 model folder: safetensors weights, tokenizer, settings, sentence-transformers files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from search_r3.settings import SearchR3Settings


def save_model_folder(
    model: Any, tokenizer: Any, settings: SearchR3Settings, output: str | os.PathLike[str]
) -> Path:
    """Save a causal LM as a search-r3 folder that every loader of the project reads.

    The settings go into the model's own ``config.json`` (key ``search_r3``); weights are written
    as safetensors only; the sentence-transformers files let ``SentenceTransformer(output,
    trust_remote_code=True)`` load the folder as it is.
    """
    from search_r3.st_module import write_sentence_transformers_files

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    settings.write_to_model_config(model.config)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    write_sentence_transformers_files(output)
    return output
