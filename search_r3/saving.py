"""Writing a search-r3 model folder: safetensors weights, tokenizer, settings, sentence-transformers files.

The writing half of the model lifecycle (:mod:`search_r3.loading` is the reading half). It
depends on nothing but the settings, so every module that makes folders (``init_model``, the
shipped-model builder, ``ReasoningEmbeddings.save_pretrained``, training exports) can use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from search_r3.settings import SearchR3Settings

#: ``modules.json`` type of the sentence-transformers module (``search_r3.st_module``).
ST_MODULE_TYPE = "search_r3.st_module.SearchR3Module"
#: Its config file; never ``config.json``, which is the LLM's own config.
ST_CONFIG_FILE = "search_r3_config.json"


def save_model_folder(
    model: Any, tokenizer: Any, settings: SearchR3Settings, output: str | os.PathLike[str]
) -> Path:
    """Save a causal LM as a search-r3 folder that every loader of the project reads.

    The settings go into the model's own ``config.json`` (key ``search_r3``); weights are written
    as safetensors only; the sentence-transformers files let ``load_sentence_transformer(output)``
    (and ``SentenceTransformer``) load the folder as it is.

    Raises:
        FileExistsError: ``output`` is an existing file.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise FileExistsError(
            f"{output} is a file; pass a folder to write the model into (it is created if missing)."
        )
    output.mkdir(parents=True, exist_ok=True)
    settings.write_to_model_config(model.config)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    write_sentence_transformers_files(output)
    return output


def write_sentence_transformers_files(
    folder: str | os.PathLike[str],
    *,
    reasoning: bool = True,
    max_reasoning_tokens: int | None = None,
    default_task: str = "document",
) -> Path:
    """Make a search-r3 model folder a sentence-transformers folder.

    Writes ``modules.json``, ``config_sentence_transformers.json`` and ``search_r3_config.json``
    next to the weights, without loading the model (cheap enough for ``init`` or a training
    export to call). ``config.json`` is left as it is, so the folder stays a plain transformers
    checkpoint. Load the result with ``search_r3.st_module.load_sentence_transformer(folder)``,
    which runs no code from the folder.
    """
    import sentence_transformers
    import torch
    import transformers

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; pass a search-r3 model folder.")
    files = {
        "modules.json": [{"idx": 0, "name": "0", "path": "", "type": ST_MODULE_TYPE}],
        "config_sentence_transformers.json": {
            "__version__": {
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "pytorch": torch.__version__,
            },
            "model_type": "SentenceTransformer",
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        ST_CONFIG_FILE: {
            "reasoning": reasoning,
            "max_reasoning_tokens": max_reasoning_tokens,
            "default_task": default_task,
        },
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return folder
