"""Request bodies of the HTTP API (responses are plain dicts, built in `search_r3.server.app`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``: OpenAI's fields plus search-r3's extensions.

    ``input`` is checked by hand (`search_r3.server.app`) so that each kind of mistake gets its own
    message and status: empty, token ids, non-strings, too many, too long.
    """

    model_config = ConfigDict(extra="ignore")

    input: Any
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    input_type: Literal["query", "document"] | None = None
    reasoning: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)


class SearchRequest(BaseModel):
    """``POST /v1/search``: the ``k`` documents of the configured collection closest to a query."""

    model_config = ConfigDict(extra="forbid")

    query: str
    k: int = Field(default=10, ge=1, le=1000)
    filter: dict[str, Any] | None = None
    mode: str | None = None
    model: str | None = None
    reasoning: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
