"""BM25 sparse vectors for hybrid search: stateless hashed token ids, term weights computed client-side.

The tokenizer, stop words, Snowball stemmer and token hashing are Qdrant's own, from
``qdrant-edge-py``'s ``Bm25`` (the same token ids as the Qdrant server's ``Qdrant/bm25`` model), so
there is no vocabulary file to keep and every process, client or server agrees on the ids.

A document vector holds, for each distinct token, the BM25 term weight with length saturation::

    tf * (k + 1) / (tf + k * (1 - b + b * doc_len / avg_len))

where ``doc_len`` counts the document's tokens after stop words. The inverse document frequency is
left to Qdrant: the store's sparse vector uses ``Modifier.IDF``, so Qdrant computes it over the
collection as it stands. ``avg_len`` is a setting (Qdrant's default 256), not a corpus statistic,
which is what keeps the vectors stateless.

A query vector gives each distinct query token the weight ``query_weight``; with reasoning, each
distinct token of the reasoning text adds ``reasoning_weight`` (lower by default, so the words the
user typed count more than the model's expansion of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from search_r3.errors import InvalidInputError, SearchR3Error

#: Name of the encoder recorded in a collection's metadata.
ENCODER_NAME = "qdrant-bm25"


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: token ids (sorted, unique) and their weights."""

    indices: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[int, float]:
        """``{token id: weight}``."""
        return dict(zip(self.indices, self.values, strict=True))

    def to_qdrant(self) -> Any:
        """The same vector as a ``qdrant_client.models.SparseVector``."""
        from qdrant_client import models

        return models.SparseVector(indices=list(self.indices), values=list(self.values))

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Bm25Settings:
    """BM25 parameters of a sparse encoder (recorded with a collection, so queries use the same).

    Attributes:
        k: Term-frequency saturation (``k1``).
        b: Length normalisation strength.
        avg_len: The document length (in tokens after stop words) counted as average.
        language: Stop-word list and Snowball stemmer, e.g. ``"english"``, ``"german"``, ``"french"``.
    """

    k: float = 1.2
    b: float = 0.75
    avg_len: float = 256.0
    language: str = "english"

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": ENCODER_NAME, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bm25Settings:
        """Settings recorded by `to_dict` (unknown keys ignored, missing ones default)."""
        known = {name: data[name] for name in ("k", "b", "avg_len", "language") if name in data}
        return cls(**known)


class SparseEncoder:
    """Turn texts into BM25 sparse vectors (documents) and weighted token sets (queries).

    Example:
        ```python
        from search_r3.sparse import SparseEncoder

        encoder = SparseEncoder()
        doc = encoder.encode_documents(["Wings lift at high angles of attack."])[0]
        query = encoder.encode_query("wing lift", reasoning="lift coefficient, stall")
        ```

    Args:
        settings: BM25 parameters (default: Qdrant's, English).
    """

    def __init__(self, settings: Bm25Settings | None = None):
        self.settings = settings or Bm25Settings()
        try:
            from qdrant_edge import Bm25, Bm25Config
        except ImportError as exc:  # a core dependency; only a broken install lacks it
            raise SearchR3Error(
                "Hybrid search needs qdrant-edge-py for its BM25 tokenizer: pip install qdrant-edge-py"
            ) from exc
        s = self.settings
        try:
            config = Bm25Config(k=float(s.k), b=float(s.b), avg_len=float(s.avg_len), language=s.language)
            self._model = Bm25(config)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"Invalid BM25 settings {asdict(s)}: {exc}. language is a lower-case name such as "
                "'english'; k, b and avg_len are positive numbers."
            ) from exc

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        """BM25 term weights (with length saturation, without IDF) of each text."""
        return [_sorted(self._model.embed_document(text)) for text in _texts(texts)]

    def tokens(self, text: str) -> list[int]:
        """The distinct token ids of ``text`` (after lower-casing, stop words and stemming)."""
        return list(_sorted(self._model.embed_query(text)).indices)

    def encode_query(
        self,
        query: str,
        reasoning: str | None = None,
        *,
        query_weight: float = 1.0,
        reasoning_weight: float = 0.25,
    ) -> SparseVector:
        """Weighted tokens of a query, optionally expanded with the model's reasoning text.

        Args:
            query: What the user typed.
            reasoning: Text the model wrote about the query (``None`` or empty: no expansion).
            query_weight: Weight of each distinct query token.
            reasoning_weight: Weight added for each distinct reasoning token (a token in both
                gets the sum).
        """
        if query_weight < 0 or reasoning_weight < 0:
            raise InvalidInputError("query_weight and reasoning_weight must not be negative.")
        weights: dict[int, float] = dict.fromkeys(self.tokens(query), float(query_weight))
        if reasoning and reasoning.strip() and reasoning_weight > 0:
            for token in self.tokens(reasoning):
                weights[token] = weights.get(token, 0.0) + float(reasoning_weight)
        indices = sorted(t for t, w in weights.items() if w > 0)
        return SparseVector(indices=indices, values=[weights[t] for t in indices])

    def __repr__(self) -> str:
        return f"SparseEncoder({self.settings})"


def _texts(texts: Iterable[str]) -> Sequence[str]:
    if isinstance(texts, str):
        raise InvalidInputError("texts must be a list of strings; wrap a single text in a list.")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(f"text at index {i} is {type(text).__name__}, not a string.")
    return out


def _sorted(vector: Any) -> SparseVector:
    pairs = sorted(zip(vector.indices, vector.values, strict=True))
    return SparseVector(indices=[int(i) for i, _ in pairs], values=[float(v) for _, v in pairs])


class RecentReasoning:
    """Reasoning texts handed from a query's dense embedding to its sparse encoding, per query text.

    Framework vector stores (LangChain's and LlamaIndex's ``QdrantVectorStore``) embed a query
    twice in a hybrid search: once with the dense model, once with the sparse encoder. The dense
    side reasons; it ``put``s the reasoning here, and the sparse side ``take``s it for the same
    text, so the model reasons once per query. Entries are taken once (no caching of searches)
    and at most ``size`` are kept. Thread-safe: async searches embed in worker threads.

    Example:
        ```python
        recent = RecentReasoning()
        recent.put("wing lift", "lift coefficient, stall")
        assert recent.take("wing lift") == "lift coefficient, stall"
        assert recent.take("wing lift") is None
        ```
    """

    def __init__(self, size: int = 64):
        import threading
        from collections import OrderedDict

        self.size = size
        self._items: OrderedDict[str, list[str]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, text: str, reasoning: str) -> None:
        """Remember the reasoning written for ``text``."""
        with self._lock:
            self._items.setdefault(text, []).append(reasoning)
            self._items.move_to_end(text)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def take(self, text: str) -> str | None:
        """The oldest reasoning remembered for ``text`` (removed), or ``None``."""
        with self._lock:
            pending = self._items.get(text)
            if not pending:
                return None
            reasoning = pending.pop(0)
            if not pending:
                del self._items[text]
            return reasoning

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._items.values())
