"""The search-r3 settings stored inside a model's own ``config.json`` (key ``search_r3``).

Keeping prompts and limits with the weights means a saved model reproduces its own behaviour;
every value the method leaves open is a field here, never a constant in the code.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
from dataclasses import dataclass, field
from typing import Any

from search_r3.errors import InvalidInputError

logger = logging.getLogger(__name__)

CONFIG_KEY = "search_r3"
EMBED_TOKEN = "<|embed_token|>"

#: Reported for the released Search-R3 checkpoint (method.md §3).
DEFAULT_QUERY_INSTRUCTION = "Please represent user queries."
DEFAULT_DOCUMENT_INSTRUCTION = "Please represent documents."
DEFAULT_REASONING_INSTRUCTION = (
    "Please represent user queries. First analyse the query briefly: its intent, the key "
    "concepts, and the terms a relevant document would likely contain. Then finish with "
    '"The embedding is" followed by the embedding token.'
)
DEFAULT_CLOSING_TEXT = "The embedding is "

#: Texts per forward pass (documents) or per generation batch (queries) wherever search-r3 batches
#: and the caller gives no ``batch_size``: the core, the CLI, the store and the LangChain and
#: LlamaIndex adapters all default to this one value. Padded tokens per pass are bounded as well
#: (``max_batch_tokens``), so a big batch of long texts does not run slower on a CPU.
DEFAULT_BATCH_SIZE = 16


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int if it is a whole number >= ``minimum``; else an ``InvalidInputError``.

    The one validator for counts and budgets (``max_reasoning_tokens``, ``max_length``,
    ``batch_size``...): ints (and numpy ints) only, so ``"5"``, ``1.5`` and ``True`` are refused
    rather than converted or truncated.

    Example:
        ```python
        check_count("batch_size", 16, 1)  # 16
        check_count("max_reasoning_tokens", "5")  # InvalidInputError
        ```
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be a whole number (int), not {type(value).__name__} {value!r}.")
    if value < minimum:
        raise InvalidInputError(f"{name} must be >= {minimum}, not {value}.")
    return int(value)


@dataclass
class SearchR3Settings:
    """Prompt templates and limits of a search-r3 model.

    Attributes:
        embed_token: The special token whose last hidden state is the embedding.
        query_instruction: System message for queries encoded without reasoning.
        document_instruction: System message for documents.
        reasoning_instruction: System message that asks for a short analysis before the token.
        closing_text: Assistant text placed right before the embed token.
        forced_separator: Text inserted between cut-off reasoning and the closing text when a
            reasoning row runs out of budget.
        max_length: Most tokens one user text may take; longer texts are truncated with a warning.
        max_reasoning_tokens: Default budget of generated reasoning tokens.
        no_repeat_ngram_size: Reasoning never repeats an n-gram of this many of its own tokens
            (the prompt is not counted, so query words can be copied); stops the loops small
            models fall into under greedy decoding. 0: off.
        normalize: Whether embeddings are L2-normalised (compare by cosine / dot product).
        collapse_whitespace: Queries and documents have every run of whitespace (line breaks,
            tabs, indents) replaced by one space before they are tokenised, so a document's
            layout does not move its embedding (docs/concepts.md). False keeps texts as given,
            for a model trained to read layout.
    """

    embed_token: str = EMBED_TOKEN
    query_instruction: str = DEFAULT_QUERY_INSTRUCTION
    document_instruction: str = DEFAULT_DOCUMENT_INSTRUCTION
    reasoning_instruction: str = DEFAULT_REASONING_INSTRUCTION
    closing_text: str = DEFAULT_CLOSING_TEXT
    forced_separator: str = "\n"
    max_length: int = 512
    max_reasoning_tokens: int = 128
    no_repeat_ngram_size: int = 0
    normalize: bool = True
    collapse_whitespace: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.max_length = check_count("max_length", self.max_length, 1)
        self.max_reasoning_tokens = check_count("max_reasoning_tokens", self.max_reasoning_tokens, 0)
        self.no_repeat_ngram_size = check_count("no_repeat_ngram_size", self.no_repeat_ngram_size, 0)
        if not isinstance(self.collapse_whitespace, bool):
            raise InvalidInputError(
                "search_r3 setting collapse_whitespace must be true or false, "
                f"not {self.collapse_whitespace!r}; fix config.json."
            )
        for name in ("embed_token", "query_instruction", "document_instruction", "reasoning_instruction"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInputError(f"search_r3 setting {name} must be a non-empty string.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> SearchR3Settings:
        """Build settings from a stored dict; unknown keys are kept in ``extra``, not dropped."""
        if values is not None and not isinstance(values, dict):
            raise InvalidInputError(
                f"The {CONFIG_KEY!r} entry of the model config must be a JSON object of settings, not "
                f"{type(values).__name__} {values!r}; fix config.json or make the model again "
                "with `search-r3 init`."
            )
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        extra = values.pop("extra", None) or {}
        if not isinstance(extra, dict):
            raise InvalidInputError(f"search_r3 setting 'extra' must be an object, not {extra!r}.")
        extra = dict(extra)
        extra.update({k: values.pop(k) for k in list(values) if k not in known})
        return cls(**values, extra=extra)

    @classmethod
    def from_model_config(cls, config: Any) -> SearchR3Settings:
        """Read settings from a transformers config; fall back to the published defaults."""
        stored = getattr(config, CONFIG_KEY, None)
        if stored is None:
            logger.info(
                "Model config has no %r entry: using the prompts published for Search-R3.",
                CONFIG_KEY,
            )
        return cls.from_dict(stored)

    def write_to_model_config(self, config: Any) -> None:
        """Store these settings in a transformers config (saved into ``config.json``)."""
        setattr(config, CONFIG_KEY, self.to_dict())
