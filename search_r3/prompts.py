"""Token ids of search-r3 prompts, built so that user text can never inject markup.

The chat template is rendered once per instruction around a sentinel; the template parts are
tokenised with special-token parsing on, the user text with it off. So a document containing
``<|embed_token|>`` or ``<|im_end|>`` is read as plain characters and every prompt holds exactly
one embed token: ours.

A transformers tokenizer keeps its special-token mode as state that each call switches, so two
threads sharing it could each read text in the other's mode. A ``PromptBuilder`` therefore never
switches it: it encodes with private copies of the tokenizer's backend, one fixed to each mode
(or, for a tokenizer without a ``tokenizers`` backend, under a lock), and is safe to share
between threads (a server's request threads, an engine's decoding thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from search_r3.errors import InvalidInputError, MissingEmbedTokenError
from search_r3.settings import SearchR3Settings

logger = logging.getLogger(__name__)

_SENTINEL = "\u2063SEARCH_R3_USER_TEXT\u2063"

#: User text is cut to ``max_length * CHARS_PER_TOKEN`` characters before it is tokenised, so a
#: huge text costs no more memory than one that just fills ``max_length``. SmolLM2's tokenizer
#: averages 4.1 characters per token on Cranfield's cran.all.1400, so the cut only removes text
#: the token limit would drop anyway; only text of long whitespace runs (~62 spaces per token)
#: can end up shorter than ``max_length`` tokens.
CHARS_PER_TOKEN = 32


def embed_token_id(tokenizer: Any, embed_token: str) -> int:
    """Id of the embed token, or a `MissingEmbedTokenError` that names the fix."""
    vocab = tokenizer.get_vocab()
    if embed_token not in vocab:
        name = getattr(tokenizer, "name_or_path", "") or "this tokenizer"
        raise MissingEmbedTokenError(
            f"{name} has no {embed_token!r} token, so it is not a search-r3 model. Make one "
            f"with `search-r3 init BASE OUTPUT` or `search_r3.init_model(BASE, OUTPUT)` "
            f"and load OUTPUT instead."
        )
    return int(vocab[embed_token])


def validate_texts(texts: Sequence[Any], what: str = "text") -> list[str]:
    """Check that every item is a non-empty string; the error names the offending index."""
    plural = "queries" if what == "query" else f"{what}s"
    if isinstance(texts, str):
        raise InvalidInputError(f"Expected a list of {plural}, got a single string; wrap it in a list.")
    checked = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"{what} at index {i} is {type(text).__name__}, not str; convert it to a string first."
            )
        if not text.strip():
            raise InvalidInputError(
                f"{what} at index {i} is empty; remove empty {plural} before encoding "
                "(an empty text has no meaning to embed)."
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{what} at index {i} holds a lone surrogate ({text[exc.start]!r} at character {exc.start}), "
                "which is not valid Unicode; read the source with errors='replace' or remove it."
            ) from None
        checked.append(text)
    return checked


#: Texts on which private encoders must agree with the tokenizer's own calls before they are used.
_PROBES = (
    "plain words, digits 12345 and punctuation!?",
    "<|im_start|>user\nhi <|embed_token|> there<|im_end|>\n<|endoftext|>",
    "  leading spaces, caf\u00e9, \u4e2d\u6587, tabs\tand\nnew lines  ",
)


def _encoders(tokenizer: Any) -> tuple[Callable[[str], list[int]], Callable[[str], list[int]]]:
    """``(markup, plain)``: text to ids with special tokens parsed, and with them split.

    Both run on private copies of the tokenizer's ``tokenizers`` backend, each fixed to its mode,
    so they share no state with the tokenizer or each other (they are thread-safe). Where the
    tokenizer has no such backend, or the copies disagree with the tokenizer on the probes, both
    call the tokenizer itself under one lock.
    """

    def call(text: str, split: bool) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])

    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        try:
            from tokenizers import Tokenizer

            copies = []
            for split in (False, True):
                copy = Tokenizer.from_str(backend.to_str())
                copy.no_truncation()
                copy.no_padding()
                copy.encode_special_tokens = split
                copies.append(copy)
            markup_copy, plain_copy = copies

            def markup(text: str) -> list[int]:
                return list(markup_copy.encode(text, add_special_tokens=False).ids)

            def plain(text: str) -> list[int]:
                return list(plain_copy.encode(text, add_special_tokens=False).ids)

            if all(markup(p) == call(p, False) and plain(p) == call(p, True) for p in _PROBES):
                return markup, plain
            logger.debug("private tokenizer copies disagree with %s; encoding under a lock", type(tokenizer))
        except Exception:  # any failure to copy: the locked calls below are always correct
            logger.debug("could not copy the tokenizer backend; encoding under a lock", exc_info=True)
    lock = threading.Lock()

    def locked_markup(text: str) -> list[int]:
        with lock:
            return call(text, False)

    def locked_plain(text: str) -> list[int]:
        with lock:
            return call(text, True)

    return locked_markup, locked_plain


@dataclass(frozen=True)
class _Template:
    """Ids before and after the user text for one system instruction."""

    prefix: list[int]
    suffix: list[int]


class PromptBuilder:
    """Builds the token ids of document, query and reasoning prompts for one tokenizer.

    Safe to share between threads: it never switches the tokenizer's state (see the module).
    """

    def __init__(self, tokenizer: Any, settings: SearchR3Settings, max_length: int | None = None):
        if not getattr(tokenizer, "chat_template", None):
            raise InvalidInputError(
                "The tokenizer has no chat template; search-r3 needs an instruction-tuned model "
                "(pass one with a chat template, or set tokenizer.chat_template before init)."
            )
        self.tokenizer = tokenizer
        self.settings = settings
        self.embed_id = embed_token_id(tokenizer, settings.embed_token)
        self.max_length = max_length or settings.max_length
        self._templates: dict[str, _Template] = {}
        self.truncated_count = 0
        self._markup, self._plain = _encoders(tokenizer)
        self._local = threading.local()  # this thread's count of truncated texts

    # -- pieces -----------------------------------------------------------------------------
    def _encode_markup(self, text: str) -> list[int]:
        return self._markup(text)

    def encode_plain(self, text: str) -> list[int]:
        """User text as data: special-token strings are split into ordinary tokens."""
        return self._plain(text)

    def _template(self, instruction: str) -> _Template:
        cached = self._templates.get(instruction)
        if cached is None:
            messages = [
                {"role": "system", "content": instruction},
                {"role": "user", "content": _SENTINEL},
            ]
            rendered = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            if rendered.count(_SENTINEL) != 1:
                raise InvalidInputError(
                    "The chat template does not place the user message exactly once; pass a standard "
                    "chat template (search-r3 init --chat-template FILE)."
                )
            before, after = rendered.split(_SENTINEL)
            cached = _Template(self._encode_markup(before), self._encode_markup(after))
            self._templates[instruction] = cached
        return cached

    @cached_property
    def closing_ids(self) -> list[int]:
        """Closing text followed by the embed token."""
        return self.encode_plain(self.settings.closing_text) + [self.embed_id]

    @cached_property
    def forced_ids(self) -> list[int]:
        """Appended to reasoning that ran out of budget."""
        return self.encode_plain(self.settings.forced_separator) + self.closing_ids

    # -- prompts ----------------------------------------------------------------------------
    def _user_ids(self, text: str, reserved: int) -> list[int]:
        if self.settings.collapse_whitespace:
            text = " ".join(text.split())
        ids = self.encode_plain(text[: self.max_length * CHARS_PER_TOKEN])
        budget = self.max_length - reserved
        if budget <= 0:
            raise InvalidInputError(
                f"max_length={self.max_length} leaves no room for the text after the prompt "
                f"({reserved} tokens); raise max_length."
            )
        if len(ids) > budget:
            self.truncated_count += 1  # all threads (approximate under concurrency)
            self._local.truncated = getattr(self._local, "truncated", 0) + 1
            ids = ids[:budget]
        return ids

    def _wrap(self, text: str, instruction: str, tail: list[int]) -> list[int]:
        template = self._template(instruction)
        reserved = len(template.prefix) + len(template.suffix) + len(tail)
        return template.prefix + self._user_ids(text, reserved) + template.suffix + tail

    def document_ids(self, text: str) -> list[int]:
        """Document prompt ending in the embed token (no reasoning)."""
        return self._wrap(text, self.settings.document_instruction, self.closing_ids)

    def query_ids(self, text: str) -> list[int]:
        """Query prompt ending in the embed token (reasoning off)."""
        return self._wrap(text, self.settings.query_instruction, self.closing_ids)

    def reasoning_prompt_ids(self, text: str) -> list[int]:
        """Query prompt that ends at the start of the assistant turn; the model writes the rest."""
        return self._wrap(text, self.settings.reasoning_instruction, [])

    def assistant_ids(self, reasoning: str | None) -> list[int]:
        """The assistant turn a trained model should write: reasoning (if any), closing, token."""
        if reasoning:
            return self.encode_plain(reasoning.rstrip() + "\n") + self.closing_ids
        return list(self.closing_ids)

    def build(self, texts: Sequence[Any], kind: str) -> list[list[int]]:
        """Validated prompts for ``kind`` in {"document", "query", "reasoning"}; warns on truncation."""
        texts = validate_texts(texts, "query" if kind != "document" else "document")
        make = {
            "document": self.document_ids,
            "query": self.query_ids,
            "reasoning": self.reasoning_prompt_ids,
        }[kind]
        before = getattr(self._local, "truncated", 0)
        prompts = [make(t) for t in texts]
        truncated = getattr(self._local, "truncated", 0) - before  # this call's, not other threads'

        if truncated:
            logger.warning(
                "%d of %d texts were longer than max_length=%d tokens and were truncated; raise "
                "the limit with from_pretrained(..., max_length=N) or by setting .max_length.",
                truncated,
                len(texts),
                self.max_length,
            )
        return prompts

    def strip_closing(self, text: str) -> str:
        """Reasoning text without the closing phrase the model writes before the token."""
        stripped = text.rstrip()
        closing = self.settings.closing_text.strip()
        if closing and stripped.endswith(closing):
            stripped = stripped[: -len(closing)].rstrip()
        return stripped
