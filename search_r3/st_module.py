"""A sentence-transformers (6.x) input module that runs a search-r3 model.

The module wraps a :class:`~search_r3.model.ReasoningEmbeddings` and calls the very same code
(``PromptBuilder`` for the prompts, ``embed_prompt_ids`` / ``reason_prompt_ids`` for the vectors),
so ``SentenceTransformer.encode_query`` and ``ReasoningEmbeddings.encode_queries`` give the same
vectors. ``encode_query`` reasons first; ``encode_document`` embeds in one forward pass.

Loading::

    from sentence_transformers import SentenceTransformer
    # a folder saved by SentenceTransformer.save, or one given write_sentence_transformers_files()
    model = SentenceTransformer("path/to/search-r3-model", trust_remote_code=True)
    # or, without the flag (public API only; works on any search-r3 folder):
    from search_r3.st_module import load_sentence_transformer
    model = load_sentence_transformer("path/to/search-r3-model")

    q = model.encode_query(["why is the sky blue?"], max_reasoning_tokens=64)
    d = model.encode_document(["Rayleigh scattering ..."])
    print(model[0].last_reasoning)

Why a flag: since sentence-transformers 6.0 any module class outside the ``sentence_transformers``
package (ours lives in ``search_r3``) is only imported from ``modules.json`` with
``trust_remote_code=True``, even from a local folder. Nothing is downloaded or executed from the
model folder itself: the class comes from the installed ``search_r3`` package. The helper
:func:`load_sentence_transformer` avoids the flag by building the module itself and handing it to
``SentenceTransformer(modules=[...])``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sentence_transformers.base.modules import InputModule

from search_r3.decoding import SamplingOptions
from search_r3.model import QueryEncodings, ReasoningEmbeddings
from search_r3.pretrained import resolve_model_source

logger = logging.getLogger(__name__)

#: Tasks sentence-transformers passes in ``task``; plain ``encode`` passes none.
QUERY, DOCUMENT = "query", "document"


class SearchR3Module(InputModule):
    """First (and only) module of a search-r3 ``SentenceTransformer``.

    Args:
        embeddings: The loaded model; its ``model`` becomes this module's parameters.
        reasoning: Whether ``encode_query`` reasons by default (``encode(..., reasoning=False)``
            switches it off per call).
        max_reasoning_tokens: Default reasoning budget (default: the model's setting).
        default_task: What plain ``encode`` (no task) does: ``"document"`` (one forward pass,
            the default) or ``"query"``.
        log_size: How many query texts `reasoning_log` remembers.

    The module is for inference (``encode``); fine-tuning goes through ``search-r3-train``,
    which calls the same core functions with gradients on.

    Attributes:
        last_reasoning: Reasoning texts of the most recent reasoning batch, in that batch's order.
        last_forced: For the same rows, whether the budget ran out before the embed token.
        reasoning_log: ``query text -> reasoning`` of recent queries (see `encode_queries`).
    """

    config_file_name = "search_r3_config.json"  # never config.json: that is the LLM's own config
    config_keys: ClassVar[list[str]] = ["reasoning", "max_reasoning_tokens", "default_task"]
    forward_kwargs: ClassVar[set[str]] = {
        "reasoning",
        "max_reasoning_tokens",
        "do_sample",
        "temperature",
        "top_p",
        "seed",
    }
    save_in_root = True

    def __init__(
        self,
        embeddings: ReasoningEmbeddings,
        *,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        default_task: str = DOCUMENT,
        log_size: int = 10_000,
    ):
        super().__init__()
        if default_task not in (QUERY, DOCUMENT):
            raise ValueError(f"default_task must be 'query' or 'document', not {default_task!r}.")
        self.embeddings = embeddings
        self.model = embeddings.model  # registered as a submodule, so .to(device) and .parameters() work
        self.tokenizer = embeddings.tokenizer
        self.reasoning = embeddings.reasoning if reasoning is None else bool(reasoning)
        self.max_reasoning_tokens = max_reasoning_tokens or embeddings.max_reasoning_tokens
        self.default_task = default_task
        self.log_size = log_size
        self.last_reasoning: list[str] = []
        self.last_forced: list[bool] = []
        self.reasoning_log: OrderedDict[str, tuple[str, bool, int]] = OrderedDict()

    # -- sentence-transformers hooks ------------------------------------------------------------
    @property
    def max_seq_length(self) -> int:
        return self.embeddings.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.embeddings.max_length = value

    def get_embedding_dimension(self) -> int:
        return self.embeddings.embedding_dimension

    def on_model_ready(self, model: Any) -> None:
        # The model card would encode example sentences; for queries that is a whole generation.
        card = getattr(model, "model_card_data", None)
        if card is not None and hasattr(card, "generate_widget_examples"):
            card.generate_widget_examples = False

    def preprocess(
        self,
        inputs: Sequence[Any],
        prompt: str | None = None,
        task: str | None = None,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Token ids of search-r3 prompts (the model's own templates) for one batch.

        A ``prompt`` from sentence-transformers is prepended to the user text (its usual
        meaning); the search-r3 instructions are applied around it either way.
        """
        texts = list(inputs)  # PromptBuilder rejects non-strings (e.g. sentence pairs) by index
        originals = list(texts)
        if prompt:
            texts = [prompt + t if isinstance(t, str) else t for t in texts]
        task = task or self.default_task
        if task not in (QUERY, DOCUMENT):
            raise ValueError(f"search-r3 handles the tasks 'query' and 'document', not {task!r}.")
        reason = self.reasoning if reasoning is None else bool(reasoning)
        if task == DOCUMENT:
            kind = "document"  # documents never reason
        else:
            kind = "reasoning" if reason else "query"
        return {
            "prompt_ids": self.embeddings.prompts.build(texts, kind),
            "kind": kind,
            "texts": originals,
        }

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Vectors for a preprocessed batch into ``features["sentence_embedding"]``."""
        prompts = features["prompt_ids"]
        device = self.embeddings.device
        if features["kind"] != "reasoning":
            features["sentence_embedding"] = self.embeddings.embed_prompt_ids(prompts).to(device)
            return features
        budget = kwargs.get("max_reasoning_tokens") or self.max_reasoning_tokens
        sampling = SamplingOptions(
            do_sample=bool(kwargs.get("do_sample", False)),
            temperature=float(kwargs.get("temperature", 1.0)),
            top_p=float(kwargs.get("top_p", 1.0)),
            seed=kwargs.get("seed"),
        )
        result = self.embeddings.reason_prompt_ids(prompts, budget, sampling)
        self._remember(features["texts"], result)
        features["sentence_embedding"] = torch.from_numpy(result.embeddings).to(device)
        features["reasoning"] = list(result.reasoning)
        features["forced"] = torch.as_tensor(result.forced, dtype=torch.bool)
        features["generated_tokens"] = torch.as_tensor(result.generated_tokens, dtype=torch.long)
        return features

    def _remember(self, texts: list[str], result: QueryEncodings) -> None:
        self.last_reasoning = list(result.reasoning)
        self.last_forced = [bool(f) for f in result.forced]
        for text, reasoning, forced, tokens in zip(
            texts, result.reasoning, result.forced, result.generated_tokens, strict=True
        ):
            self.reasoning_log[text] = (reasoning, bool(forced), int(tokens))
            self.reasoning_log.move_to_end(text)
        while len(self.reasoning_log) > self.log_size:
            self.reasoning_log.popitem(last=False)

    # -- saving and loading ---------------------------------------------------------------------
    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Write a plain transformers checkpoint (safetensors) plus ``search_r3_config.json``."""
        if not safe_serialization:
            logger.info("search-r3 always saves safetensors; safe_serialization=False is ignored.")
        self.embeddings.settings.write_to_model_config(self.model.config)
        self.model.save_pretrained(output_path, safe_serialization=True)
        self.save_tokenizer(output_path)
        self.save_config(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SearchR3Module:
        """Load from a search-r3 folder or Hub id (with or without sentence-transformers files).

        ``model_kwargs`` may hold ``dtype`` (or ``torch_dtype``) and ``max_length``. Loading
        happens on the CPU; ``SentenceTransformer`` then moves the model to its device.
        """
        model_name_or_path = resolve_model_source(model_name_or_path)  # shipped short names
        config = cls.load_config(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        for key, value in (kwargs.get("init_defaults") or {}).items():
            config.setdefault(key, value)
        model_kwargs = dict(model_kwargs or {})
        dtype = model_kwargs.pop("dtype", None) or model_kwargs.pop("torch_dtype", None)
        source = f"{model_name_or_path}/{subfolder}" if subfolder else model_name_or_path
        embeddings = ReasoningEmbeddings.from_pretrained(
            source,
            device="cpu",
            dtype=None if dtype == "auto" else dtype,
            revision=revision,
            token=token,
            local_files_only=local_files_only,
            max_length=model_kwargs.pop("max_length", None),
        )
        known = {k: config[k] for k in cls.config_keys if k in config}
        return cls(embeddings, **known)

    def __repr__(self) -> str:
        return (
            f"SearchR3Module({self.embeddings!r}, reasoning={self.reasoning}, "
            f"max_reasoning_tokens={self.max_reasoning_tokens})"
        )


def load_sentence_transformer(
    model_name_or_path: str,
    *,
    device: str | None = None,
    reasoning: bool | None = None,
    max_reasoning_tokens: int | None = None,
    dtype: str | torch.dtype | None = None,
    **hub_kwargs: Any,
) -> Any:
    """A ``SentenceTransformer`` for a search-r3 folder or Hub id, without ``trust_remote_code``.

    Builds `SearchR3Module` directly and passes it as ``modules=[...]`` (public
    sentence-transformers API), so no class is imported from ``modules.json``. Works on a plain
    search-r3 folder (from ``search-r3 init`` or training) as well as on one saved by
    ``SentenceTransformer.save``. The saved ``search_r3_config.json`` (reasoning defaults) is
    honoured; arguments given here override it.
    """
    from sentence_transformers import SentenceTransformer

    module = SearchR3Module.load(
        str(model_name_or_path), model_kwargs={"dtype": dtype} if dtype is not None else None, **hub_kwargs
    )
    if reasoning is not None:
        module.reasoning = reasoning
    if max_reasoning_tokens is not None:
        module.max_reasoning_tokens = max_reasoning_tokens
    return SentenceTransformer(modules=[module], device=device)


def write_sentence_transformers_files(
    folder: str | os.PathLike[str],
    *,
    reasoning: bool = True,
    max_reasoning_tokens: int | None = None,
    default_task: str = DOCUMENT,
) -> Path:
    """Make a search-r3 model folder loadable by ``SentenceTransformer(folder, trust_remote_code=True)``.

    Writes ``modules.json``, ``config_sentence_transformers.json`` and ``search_r3_config.json``
    next to the weights, without loading the model (cheap enough for ``init`` or a training
    export to call). ``config.json`` is left as it is, so the folder stays a plain transformers
    checkpoint.
    """
    import sentence_transformers
    import transformers

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; pass a search-r3 model folder.")
    cls = SearchR3Module
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": f"{cls.__module__}.{cls.__name__}"},
        ],
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
        cls.config_file_name: {
            "reasoning": reasoning,
            "max_reasoning_tokens": max_reasoning_tokens,
            "default_task": default_task,
        },
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return folder


def to_sentence_transformer(
    embeddings: ReasoningEmbeddings, *, device: str | None = None, **module_kwargs: Any
) -> Any:
    """Wrap an already loaded `ReasoningEmbeddings` (shared weights, no copy)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        modules=[SearchR3Module(embeddings, **module_kwargs)], device=device or str(embeddings.device)
    )


def encode_queries(model: Any, queries: Sequence[str], **encode_kwargs: Any) -> QueryEncodings:
    """``model.encode_query`` plus the reasoning of each query, in input order.

    Args:
        model: A ``SentenceTransformer`` whose first module is `SearchR3Module`.
        **encode_kwargs: Passed to ``encode_query`` (``reasoning``, ``max_reasoning_tokens``,
            ``batch_size``, ...).
    """
    module = model[0]
    if not isinstance(module, SearchR3Module):
        raise TypeError("encode_queries needs a SentenceTransformer built on SearchR3Module.")
    if isinstance(queries, str):
        queries = [queries]
    module.reasoning_log.clear()
    vectors = model.encode_query(list(queries), convert_to_numpy=True, **encode_kwargs)
    traces = [module.reasoning_log.get(q, ("", False, 0)) for q in queries]
    return QueryEncodings(
        embeddings=np.asarray(vectors, dtype=np.float32),
        reasoning=[t[0] for t in traces],
        forced=np.array([t[1] for t in traces], dtype=bool),
        generated_tokens=[t[2] for t in traces],
    )
