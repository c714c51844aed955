"""A query cache: a repeated query skips its reasoning and gets back the very same vector.

One implementation serves the core (``ReasoningEmbeddings.encode_queries`` when the instance has a
``query_cache``), the HTTP server and the framework adapters. Entries are keyed by

- the model's **weights fingerprint** (`model_fingerprint`): a SHA-256 of the search-r3
  settings, the model config (less its path), the tokenizer's size and chat template, and every
  parameter's name, shape and dtype with its values (tensors up to 65,536 values in full, larger
  ones as a strided sample of about 4,096 values plus the embed token's row of the embedding
  matrices). It takes milliseconds, does not depend on where the folder lives, and changes when
  any fine-tuning touches the weights;
- the query text and the prompt length limit (truncation changes the prompt);
- the reasoning settings: reasoning on or off, the token budget, and the sampling options.

Sampling without a seed is not reproducible, so such queries are never cached.

Entries live in memory (an LRU of ``max_entries``); with ``path`` they are also written to a
SQLite file (stdlib ``sqlite3``; vectors stored as raw little-endian float32 bytes, nothing is
pickled), so they survive restarts and can be shared by processes using the same model.

Example:
    ```python
    from search_r3 import ReasoningEmbeddings
    from search_r3.query_cache import QueryCache

    emb = ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m", device="cpu")
    emb.query_cache = QueryCache(max_entries=10_000)  # or QueryCache(path="queries.sqlite")
    first = emb.encode_queries(["why does bread go stale?"])   # reasons
    again = emb.encode_queries(["why does bread go stale?"])   # cache hit: no generation
    assert (first.embeddings == again.embeddings).all()
    ```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search_r3.errors import InvalidInputError

if TYPE_CHECKING:
    from search_r3.model import QueryEncodings, ReasoningEmbeddings

#: Bumped whenever the key layout changes, so an old persistent file is never misread.
KEY_VERSION = 1

_FULL_HASH_LIMIT = 65_536
_SAMPLE_SIZE = 4_096


@dataclass(frozen=True)
class CachedQuery:
    """One cached query: its vector and what the reasoning produced."""

    vector: np.ndarray
    reasoning: str = ""
    forced: bool = False
    generated_tokens: int = 0


def sampling_key(
    do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None
) -> list[Any] | None:
    """The sampling part of a key: ``[]`` for greedy decoding, ``None`` when not cacheable."""
    if not do_sample:
        return []
    if seed is None:
        return None
    return [float(temperature), float(top_p), int(seed)]


def query_key(
    fingerprint: str,
    text: str,
    *,
    reasoning: bool,
    max_reasoning_tokens: int,
    max_length: int,
    sampling: Sequence[Any] | None = (),
) -> str | None:
    """The cache key of one query (a hex SHA-256), or ``None`` if the query must not be cached.

    Args:
        fingerprint: The model's `model_fingerprint`.
        text: The query text, exactly as given.
        reasoning: Whether the query reasons before embedding.
        max_reasoning_tokens: The reasoning budget (ignored when ``reasoning`` is off).
        max_length: The model's prompt length limit (longer texts are truncated).
        sampling: From `sampling_key` (``[]`` for greedy; ``None``: not cacheable).
    """
    if sampling is None:
        return None
    budget = int(max_reasoning_tokens) if reasoning else 0
    payload = [KEY_VERSION, fingerprint, text, bool(reasoning), budget, int(max_length), list(sampling)]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def model_fingerprint(embeddings: ReasoningEmbeddings) -> str:
    """A stable hex fingerprint of a loaded model's weights and settings (see the module docs).

    Computed once per model object and remembered; a model whose weights are changed in place
    afterwards (training) keeps its old fingerprint, so give such a model no cache, or call
    `forget_fingerprint` after each change.
    """
    model = embeddings.model
    known = _FINGERPRINTS.get(model)
    if known is not None:
        return known
    import torch

    digest = hashlib.sha256()
    config = model.config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "search_r3"):
        config.pop(volatile, None)
    digest.update(json.dumps(dataclasses.asdict(embeddings.settings), sort_keys=True, default=str).encode())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    tokenizer = embeddings.tokenizer
    digest.update(f"{len(tokenizer)}|{getattr(tokenizer, 'chat_template', '')}".encode())
    embed_id = int(embeddings.embed_id)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel() <= _FULL_HASH_LIMIT:
                picked = flat
            else:
                stride = max(1, flat.numel() // _SAMPLE_SIZE) | 1  # odd stride: not aligned to rows
                picked = flat[::stride]
                if tensor.dim() == 2 and tensor.shape[0] > embed_id:  # the trained embed token's row
                    picked = torch.cat([picked, tensor[embed_id].reshape(-1)])
            digest.update(picked.to(torch.float32).cpu().numpy().tobytes())
    fingerprint = digest.hexdigest()
    _FINGERPRINTS[model] = fingerprint
    return fingerprint


def forget_fingerprint(embeddings: ReasoningEmbeddings) -> None:
    """Drop the remembered fingerprint (call after changing a model's weights in place)."""
    _FINGERPRINTS.pop(embeddings.model, None)


_FINGERPRINTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class QueryCache:
    """An LRU of query vectors and reasoning, in memory and optionally in a SQLite file.

    Thread-safe: the server's request handlers and its engine thread share one instance.

    Args:
        max_entries: Most entries kept (in memory, and in the file when ``path`` is set); the
            least recently used go first.
        path: A SQLite file to persist entries in (created if missing); ``None``: memory only.

    Attributes:
        hits: Lookups answered from the cache since it was made.
        misses: Lookups that were not.
    """

    def __init__(self, max_entries: int = 10_000, path: str | os.PathLike[str] | None = None):
        if max_entries <= 0:
            raise InvalidInputError(f"max_entries must be positive, got {max_entries}.")
        self.max_entries = int(max_entries)
        self.path = Path(path).expanduser() if path is not None else None
        self.hits = 0
        self.misses = 0
        self._memory: OrderedDict[str, CachedQuery] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self._db = self._open(self.path)

    # -- storage --------------------------------------------------------------------------------
    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        if path.is_dir():
            raise InvalidInputError(f"query cache path {path} is a folder; give a file, e.g. {path}/q.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS queries (key TEXT PRIMARY KEY, vector BLOB NOT NULL, reasoning "
                "TEXT NOT NULL, forced INTEGER NOT NULL, tokens INTEGER NOT NULL, used REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS queries_used ON queries(used)")
        except sqlite3.DatabaseError as exc:
            raise InvalidInputError(
                f"query cache file {path} is not a usable SQLite database ({exc}); delete it or pick "
                "another path."
            ) from exc
        return db

    def get(self, key: str | None) -> CachedQuery | None:
        """The entry for ``key`` (counted as a hit or a miss); ``None`` when absent or uncacheable."""
        if key is None:
            return None
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                self._memory.move_to_end(key)
            elif self._db is not None:
                entry = self._read(key)
                if entry is not None:
                    self._remember(key, entry)
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            return entry

    def put(self, key: str | None, entry: CachedQuery) -> CachedQuery:
        """Store ``entry`` under ``key`` and return the stored entry (its vector is read-only).

        A ``None`` key (an uncacheable query) stores nothing.
        """
        if key is None:
            return entry
        vector = np.ascontiguousarray(entry.vector, dtype=np.float32).reshape(-1)
        vector.setflags(write=False)  # shared by every hit: nobody may change it in place
        entry = dataclasses.replace(entry, vector=vector)
        with self._lock:
            self._remember(key, entry)
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO queries VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        vector.astype("<f4").tobytes(),
                        entry.reasoning,
                        int(entry.forced),
                        int(entry.generated_tokens),
                        time.time(),
                    ),
                )
                self._trim_file()
        return entry

    def _remember(self, key: str, entry: CachedQuery) -> None:
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    def _read(self, key: str) -> CachedQuery | None:
        assert self._db is not None
        row = self._db.execute(
            "SELECT vector, reasoning, forced, tokens FROM queries WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        self._db.execute("UPDATE queries SET used = ? WHERE key = ?", (time.time(), key))
        vector = np.frombuffer(row[0], dtype="<f4").astype(np.float32)
        vector.setflags(write=False)
        return CachedQuery(vector, row[1], bool(row[2]), int(row[3]))

    def _trim_file(self) -> None:
        assert self._db is not None
        (count,) = self._db.execute("SELECT COUNT(*) FROM queries").fetchone()
        if count > self.max_entries:
            self._db.execute(
                "DELETE FROM queries WHERE key IN (SELECT key FROM queries ORDER BY used LIMIT ?)",
                (count - self.max_entries,),
            )

    def __len__(self) -> int:
        with self._lock:
            if self._db is not None:
                return int(self._db.execute("SELECT COUNT(*) FROM queries").fetchone()[0])
            return len(self._memory)

    def __bool__(self) -> bool:  # an empty cache is still a cache: `if cache:` must not skip it
        return True

    def clear(self) -> None:
        """Drop every entry (and the file's rows); the hit and miss counts stay."""
        with self._lock:
            self._memory.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM queries")

    def close(self) -> None:
        """Close the SQLite file, if any (memory entries stay usable)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> QueryCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        return f"QueryCache({where}, max_entries={self.max_entries}, hits={self.hits}, misses={self.misses})"

    # -- the core's hook ------------------------------------------------------------------------
    def key_for(
        self,
        embeddings: ReasoningEmbeddings,
        text: str,
        *,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        sampling: Sequence[Any] | None = (),
    ) -> str | None:
        """The key of ``text`` for this model, with the instance's defaults filled in.

        ``sampling`` comes from `sampling_key`: empty for greedy, ``None`` when uncacheable.
        """
        reasoning = embeddings.reasoning if reasoning is None else reasoning
        budget = embeddings.max_reasoning_tokens if max_reasoning_tokens is None else max_reasoning_tokens
        return query_key(
            model_fingerprint(embeddings),
            text,
            reasoning=reasoning,
            max_reasoning_tokens=budget,
            max_length=embeddings.max_length,
            sampling=sampling,
        )

    def encode_queries(
        self,
        embeddings: ReasoningEmbeddings,
        queries: Sequence[str],
        *,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> QueryEncodings:
        """``embeddings.encode_queries`` through the cache: only the misses are encoded, in one call.

        Repeated texts within ``queries`` are encoded once. ``kwargs`` (``batch_size``,
        ``show_progress_bar``) go to the encoding call.
        """
        from search_r3.model import QueryEncodings
        from search_r3.prompts import validate_texts

        queries = validate_texts(queries, "query")
        sampling = sampling_key(do_sample, temperature, top_p, seed)
        keys = [
            self.key_for(
                embeddings,
                q,
                reasoning=reasoning,
                max_reasoning_tokens=max_reasoning_tokens,
                sampling=sampling,
            )
            for q in queries
        ]
        groups: dict[Any, list[int]] = {}  # one group per distinct key (each uncacheable query alone)
        for i, key in enumerate(keys):
            groups.setdefault(key if key is not None else ("uncacheable", i), []).append(i)
        found: dict[int, CachedQuery] = {}
        missing: list[list[int]] = []
        for positions in groups.values():
            entry = self.get(keys[positions[0]])
            if entry is None:
                missing.append(positions)
            else:
                found.update(dict.fromkeys(positions, entry))
        if missing:
            fresh = embeddings.encode_queries(
                [queries[positions[0]] for positions in missing],
                reasoning=reasoning,
                max_reasoning_tokens=max_reasoning_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                use_cache=False,
                **kwargs,
            )
            for row, positions in enumerate(missing):
                entry = CachedQuery(
                    fresh.embeddings[row],
                    fresh.reasoning[row],
                    bool(fresh.forced[row]),
                    int(fresh.generated_tokens[row]),
                )
                found.update(dict.fromkeys(positions, self.put(keys[positions[0]], entry)))
        ordered = [found[i] for i in range(len(queries))]
        if not ordered:
            return embeddings.encode_queries([], reasoning=reasoning, use_cache=False)
        return QueryEncodings(
            embeddings=np.stack([e.vector for e in ordered]).astype(np.float32),
            reasoning=[e.reasoning for e in ordered],
            forced=np.array([e.forced for e in ordered], dtype=bool),
            generated_tokens=[e.generated_tokens for e in ordered],
        )
