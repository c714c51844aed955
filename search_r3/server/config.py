"""What one server answers and how much it accepts (the ``search-r3 serve`` options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputType = Literal["query", "document"]


@dataclass
class ServerConfig:
    """Settings of a search-r3 server.

    Attributes:
        model_name: The id the server answers to (``model`` in requests, ``GET /v1/models``).
        api_key: Clients must send ``Authorization: Bearer KEY``; ``None``: no key needed.
        default_input_type: How ``/v1/embeddings`` treats inputs that name no ``input_type``
            (OpenAI clients send none). ``"query"``: reason first (the default: forgetting it on
            queries would silently lose the reasoning, forgetting it on documents is only slow);
            ``"document"``: one forward pass. ``/v1/query/embeddings`` and
            ``/v1/document/embeddings`` fix the type by URL, for clients that cannot add fields.
        max_inputs: Most texts in one request (413 above).
        max_input_chars: Most characters in one text (413 above).
        max_total_chars: Most characters in one request, all texts together (413 above).
        max_reasoning_tokens: Highest reasoning budget a request may ask for (400 above).
        max_pending_queries: Most queries waiting in or for the engine; requests beyond get 429.
        document_batch_size: Most documents gathered from concurrent requests into one model call.
        drain_timeout: Seconds a shutdown waits for in-flight requests before stopping anyway.
    """

    model_name: str
    api_key: str | None = None
    default_input_type: InputType = "query"
    max_inputs: int = 256
    max_input_chars: int = 16_384
    max_total_chars: int = 1_048_576
    max_reasoning_tokens: int = 512
    max_pending_queries: int = 1024
    document_batch_size: int = 64
    drain_timeout: float = 30.0

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read (4 bytes per character at most, plus room for the JSON)."""
        return 4 * self.max_total_chars + 65_536
