"""Exceptions raised by search-r3. Each message says what went wrong and how to fix it."""

from __future__ import annotations


class SearchR3Error(Exception):
    """Base class of every error search-r3 raises on purpose."""


class MissingEmbedTokenError(SearchR3Error, ValueError):
    """The tokenizer (or a model) does not know the embed token."""


class ModelLoadError(SearchR3Error, OSError):
    """A model folder or Hub id could not be loaded."""


class InvalidInputError(SearchR3Error, ValueError):
    """A text passed for encoding is empty or not a string."""
