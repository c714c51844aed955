"""The store's error types (shared by `search_r3.store` and its backends)."""

from __future__ import annotations

from search_r3.errors import SearchR3Error


class StoreError(SearchR3Error):
    """Something about the vector store went wrong; the message names the fix."""


class StoreLockedError(StoreError, RuntimeError):
    """A local store folder is already opened by another client (process)."""


class StoreOptionsError(StoreError, ValueError):
    """The store was given contradictory or unusable options (e.g. both a path and a URL)."""
