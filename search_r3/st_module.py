"""A sentence-transformers (6.x) input module that runs a search-r3 model.

The module wraps a ``ReasoningEmbeddings`` and calls the very same code (``PromptBuilder`` for
the prompts, ``embed_prompt_ids`` / ``reason_prompt_ids`` for the vectors), so
``SentenceTransformer.encode_query`` and ``ReasoningEmbeddings.encode_queries`` give the same
vectors. ``encode_query`` reasons first; ``encode_document`` embeds in one forward pass.

Loading (the documented way, safe for any folder):

```python
from search_r3.st_module import encode_queries, load_sentence_transformer

model = load_sentence_transformer("path/to/search-r3-model")  # or a Hub id, or a shipped name
q = model.encode_query(["why is the sky blue?"], max_reasoning_tokens=64)
d = model.encode_document(["Rayleigh scattering ..."])
print(encode_queries(model, ["why is the sky blue?"]).reasoning)
```

``load_sentence_transformer`` builds ``SearchR3Module`` from the installed ``search_r3`` package
and hands it to ``SentenceTransformer(modules=[...])``: the folder's ``modules.json`` is never
read as code, and nothing from the folder is imported or run (weights are read from
safetensors only).

About ``SentenceTransformer(folder, trust_remote_code=True)``: it also loads a search-r3
folder, but the flag tells sentence-transformers to import *whatever Python class the folder's
``modules.json`` names*, including a ``.py`` file shipped inside the folder. For a folder you
did not make yourself that means running its author's code with your permissions. Use it only on
folders you wrote (``save_pretrained``, ``search-r3 init``, training exports); for anything
downloaded or shared, use ``load_sentence_transformer``.
"""

from __future__ import annotations

import json
import logging
import threading
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
from search_r3.saving import ST_CONFIG_FILE, ST_MODULE_TYPE, write_sentence_transformers_files

__all__ = [
    "SearchR3Module",
    "encode_queries",
    "load_sentence_transformer",
    "to_sentence_transformer",
    "write_sentence_transformers_files",
]

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

    config_file_name = ST_CONFIG_FILE  # never config.json: that is the LLM's own config
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
        self.max_reasoning_tokens = (
            embeddings.max_reasoning_tokens
            if max_reasoning_tokens is None
            else embeddings.checked_budget(max_reasoning_tokens)
        )
        self.default_task = default_task
        self.log_size = log_size
        self.last_reasoning: list[str] = []
        self.last_forced: list[bool] = []
        self.reasoning_log: OrderedDict[str, tuple[str, bool, int]] = OrderedDict()
        self._log_lock = threading.Lock()

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
        budget = kwargs.get("max_reasoning_tokens")
        budget = self.max_reasoning_tokens if budget is None else self.embeddings.checked_budget(budget)
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
        # Per-row position in this batch: with output_value=None each row gets its own slice of
        # the tensors but the whole "reasoning" list; encode_queries picks its text by this index.
        features["row_index"] = torch.arange(len(prompts), dtype=torch.long)
        return features

    def _remember(self, texts: list[str], result: QueryEncodings) -> None:
        with self._log_lock:  # a convenience record only; encode_queries never reads it back
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
    """A ``SentenceTransformer`` for a search-r3 folder or Hub id; runs no code from the folder.

    The documented way to load a search-r3 model into sentence-transformers. Builds
    ``SearchR3Module`` from the installed ``search_r3`` package and passes it as
    ``modules=[...]`` (public sentence-transformers API), so no class is imported from
    ``modules.json`` (a folder whose ``modules.json`` names another class gets a warning, and that
    class is ignored). Works on a plain search-r3 folder (from ``search-r3 init`` or training) as
    well as on one saved by ``SentenceTransformer.save``. The saved ``search_r3_config.json``
    (reasoning defaults) is honoured; arguments given here override it.

    Example:
        ```python
        model = load_sentence_transformer("search-r3-smollm2-135m", device="cpu")
        vectors = model.encode_document(["Rayleigh scattering makes the sky blue."])
        ```
    """
    from sentence_transformers import SentenceTransformer

    _warn_foreign_modules(str(model_name_or_path))
    module = SearchR3Module.load(
        str(model_name_or_path), model_kwargs={"dtype": dtype} if dtype is not None else None, **hub_kwargs
    )
    if reasoning is not None:
        module.reasoning = reasoning
    if max_reasoning_tokens is not None:
        module.max_reasoning_tokens = module.embeddings.checked_budget(max_reasoning_tokens)
    return SentenceTransformer(modules=[module], device=device)


def _warn_foreign_modules(folder: str) -> None:
    """Warn when a local folder's modules.json names classes this loader will not import."""
    modules = Path(folder).expanduser() / "modules.json"
    if not modules.is_file():
        return
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
        types = [str(entry.get("type")) for entry in entries]
    except (ValueError, AttributeError, TypeError):
        types = ["(unreadable modules.json)"]
    foreign = [t for t in types if t != ST_MODULE_TYPE]
    if foreign:
        logger.warning(
            "%s names module classes %s; load_sentence_transformer ignores them (nothing from the "
            "folder is imported or run) and loads the search-r3 model only.",
            modules,
            foreign,
        )


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
    encode_kwargs.pop("output_value", None)
    encode_kwargs.pop("convert_to_numpy", None)
    encode_kwargs.pop("convert_to_tensor", None)
    # Every row's own outputs (no shared log), so concurrent calls from many threads and
    # repeated queries each get their own reasoning.
    rows = model.encode_query(list(queries), output_value=None, **encode_kwargs)
    reasoning, forced, tokens = [], [], []
    for row in rows:
        if "reasoning" in row:
            index = int(row["row_index"])
            reasoning.append(row["reasoning"][index])
            forced.append(bool(row["forced"]))
            tokens.append(int(row["generated_tokens"]))
        else:  # reasoning off
            reasoning.append("")
            forced.append(False)
            tokens.append(0)
    vectors = [row["sentence_embedding"].detach().float().cpu().numpy() for row in rows]
    dim = module.get_embedding_dimension()
    return QueryEncodings(
        embeddings=np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32),
        reasoning=reasoning,
        forced=np.array(forced, dtype=bool),
        generated_tokens=tokens,
    )
