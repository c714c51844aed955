"""The model side of the server: queries through the engine and the query cache, documents
through a micro-batcher, searches through the store. Everything here is awaited on the event
loop; model calls run on worker threads, so the loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_r3.engine import EngineClosedError
from search_r3.query_cache import CachedQuery, QueryCache, model_fingerprint
from search_r3.server.config import ServerConfig
from search_r3.server.errors import APIError
from search_r3.server.metrics import ServerMetrics

logger = logging.getLogger(__name__)


@dataclass
class Encoded:
    """One embedded text, as the API returns it."""

    vector: np.ndarray
    reasoning: str = ""
    forced: bool = False
    generated_tokens: int = 0
    prompt_tokens: int = 0
    cached: bool = False


@dataclass
class _DocumentJob:
    texts: list[str]
    future: asyncio.Future[list[tuple[np.ndarray, int]]]
    queued_at: float
    endpoint: str


class DocumentBatcher:
    """Gathers the documents of concurrent requests into one ``encode_documents`` call.

    While one call runs, new requests queue up; the next call takes all of them (up to
    ``max_batch`` texts). A call that fails is retried request by request, so one bad request
    never fails the others it was batched with. ``run`` runs a call off the event loop and
    returns its future (the query engine's ``call``, so one thread does all the model's work,
    or an executor's ``submit``).
    """

    def __init__(
        self,
        embeddings: Any,
        run: Callable[[Callable[[], Any]], Future[Any]],
        metrics: ServerMetrics,
        max_batch: int,
    ):
        self._embeddings = embeddings
        self._run_elsewhere = run
        self._metrics = metrics
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_DocumentJob | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None

    async def encode(
        self, texts: list[str], endpoint: str = "/v1/embeddings"
    ) -> list[tuple[np.ndarray, int]]:
        """``(vector, prompt tokens)`` for each text, once its batch has run (``endpoint`` labels
        the queue-time metric)."""
        future: asyncio.Future[list[tuple[np.ndarray, int]]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_DocumentJob(texts, future, time.perf_counter(), endpoint))
        return await future

    def _encode_now(self, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        lengths = [len(p) for p in self._embeddings.prompts.build(texts, "document")]
        vectors = self._embeddings.encode_documents(texts, show_progress_bar=False)
        return list(zip(vectors, lengths, strict=True))

    async def _encode(self, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        return await asyncio.wrap_future(self._run_elsewhere(functools.partial(self._encode_now, texts)))

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            job = await self._queue.get()
            if job is None:
                break
            jobs, size = [job], len(job.texts)
            while size < self._max_batch and not self._queue.empty():
                extra = self._queue.get_nowait()
                if extra is None:
                    stopping = True
                    break
                jobs.append(extra)
                size += len(extra.texts)
            started = time.perf_counter()
            for j in jobs:
                self._metrics.queue_seconds.labels(j.endpoint, "document").observe(started - j.queued_at)
            self._metrics.batch_size.labels("document").observe(size)
            texts = [t for j in jobs for t in j.texts]
            try:
                rows = await self._encode(texts)
            except Exception as exc:
                if len(jobs) == 1:
                    jobs[0].future.set_exception(exc)
                    continue
                for j in jobs:  # find the culprit: each request alone
                    try:
                        j.future.set_result(await self._encode(j.texts))
                    except Exception as one:
                        j.future.set_exception(one)
                continue
            start = 0
            for j in jobs:
                if not j.future.cancelled():
                    j.future.set_result(rows[start : start + len(j.texts)])
                start += len(j.texts)


class EmbeddingService:
    """Queries, documents and searches for the HTTP layer.

    Args:
        embeddings: The loaded `ReasoningEmbeddings`.
        engine: The continuous-batching query engine: ``submit(text, reasoning=...,
            max_reasoning_tokens=..., on_start=...)`` returns a `concurrent.futures.Future` of a
            one-row `QueryEncodings` and calls ``on_start`` with the seconds the query queued
            before decoding; ``close(drain=True)`` finishes what it holds.
        config: Limits and names.
        metrics: Where to count.
        cache: The query cache (``None``: every query is encoded).
        store: A `QdrantStore` for ``/v1/search`` (``None``: search is not offered).
    """

    def __init__(
        self,
        embeddings: Any,
        engine: Any,
        *,
        config: ServerConfig,
        metrics: ServerMetrics,
        cache: QueryCache | None = None,
        store: Any = None,
    ):
        self.embeddings = embeddings
        self.engine = engine
        self.config = config
        self.metrics = metrics
        self.cache = cache
        self.store = store
        self.pending_queries = 0
        self._doc_executor = ThreadPoolExecutor(1, thread_name_prefix="search-r3-documents")
        self._store_executor = ThreadPoolExecutor(1, thread_name_prefix="search-r3-store")
        # documents on the engine's thread where it takes work: one thread runs the model
        run_documents = getattr(engine, "call", None) or self._doc_executor.submit
        self._documents = DocumentBatcher(embeddings, run_documents, metrics, config.document_batch_size)
        #: Whether the store's ``search`` takes a ``mode`` (dense, sparse, hybrid...); else dense only.
        self.store_has_modes = store is not None and "mode" in inspect.signature(store.search).parameters
        #: Whether the store searches with a ready query encoding (`QdrantStore.search_encoded`).
        self._takes_encodings = hasattr(store, "search_encoded")
        if cache is not None:
            metrics.cache_entries.set_function(lambda: len(cache))
            model_fingerprint(embeddings)  # now, not on the first request
        metrics.watch_engine(engine)
        # Render every prompt template now, before requests run on several threads: the first
        # render toggles the tokenizer's special-token switch, which must not race with encoding.
        for kind in ("document", "query", "reasoning"):
            embeddings.prompts.build(["warm-up"], kind)
        _ = embeddings.prompts.forced_ids

    @property
    def dimension(self) -> int:
        return int(self.embeddings.embedding_dimension)

    async def start(self) -> None:
        self._documents.start()

    async def close(self) -> None:
        """Finish queued work, then release the engine, the store and the cache file."""
        await self._documents.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: self.engine.close(drain=True))
        self._doc_executor.shutdown(wait=True)
        if self.store is not None:
            await loop.run_in_executor(self._store_executor, self.store.close)
        self._store_executor.shutdown(wait=True)
        if self.cache is not None:
            self.cache.close()

    # -- queries ------------------------------------------------------------------------------
    async def queries(
        self,
        texts: list[str],
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        *,
        endpoint: str = "/v1/embeddings",
    ) -> list[Encoded]:
        """Embed queries: cache hits at once, the rest through the engine (all submitted at once).

        ``endpoint`` labels the queue-time metric of the queries that go through the engine."""
        emb = self.embeddings
        reasoning = emb.reasoning if reasoning is None else reasoning
        budget = emb.max_reasoning_tokens if max_reasoning_tokens is None else max_reasoning_tokens
        kind = "reasoning" if reasoning else "query"
        # tokenising up to max_total_chars takes a while: off the event loop
        prompts = await asyncio.get_running_loop().run_in_executor(None, emb.prompts.build, texts, kind)
        lengths = [len(p) for p in prompts]
        keys = [
            self.cache.key_for(emb, t, reasoning=reasoning, max_reasoning_tokens=budget)
            if self.cache is not None
            else None
            for t in texts
        ]
        out: list[Encoded | None] = [None] * len(texts)
        groups: dict[Any, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key if key is not None else ("uncached", i), []).append(i)
        todo: list[list[int]] = []
        for positions in groups.values():
            hit = self.cache.get(keys[positions[0]]) if self.cache is not None else None
            if hit is None:
                todo.append(positions)
                continue
            self.metrics.cache_hits.inc()
            for i in positions:
                out[i] = self._row(hit, lengths[i], cached=True)
        if self.cache is not None:
            self.metrics.cache_misses.inc(len(todo))
        if todo:
            if self.pending_queries + len(todo) > self.config.max_pending_queries:
                raise APIError(
                    429,
                    f"The server already holds {self.pending_queries} queries (limit "
                    f"{self.config.max_pending_queries}); retry shortly or send fewer at once.",
                    code="queue_full",
                )
            self.pending_queries += len(todo)
            self.metrics.pending_queries.set(self.pending_queries)
            queued = self.metrics.queue_seconds.labels(endpoint, "query").observe
            try:
                futures = [
                    asyncio.wrap_future(
                        self.engine.submit(
                            texts[p[0]], reasoning=reasoning, max_reasoning_tokens=budget, on_start=queued
                        )
                    )
                    for p in todo
                ]
                results = await asyncio.gather(*futures)
            except EngineClosedError as exc:
                raise APIError(
                    503, "The server is shutting down; retry later.", code="shutting_down"
                ) from exc
            finally:
                self.pending_queries -= len(todo)
                self.metrics.pending_queries.set(self.pending_queries)
            for positions, result in zip(todo, results, strict=True):
                entry = CachedQuery(
                    np.asarray(result.embeddings[0], dtype=np.float32),
                    result.reasoning[0] if result.reasoning else "",
                    bool(result.forced[0]) if len(result.forced) else False,
                    int(result.generated_tokens[0]) if result.generated_tokens else 0,
                )
                if self.cache is not None:
                    entry = self.cache.put(keys[positions[0]], entry)
                self.metrics.add_reasoning_tokens(entry.generated_tokens)
                for n, i in enumerate(positions):
                    out[i] = self._row(entry, lengths[i], cached=n > 0)
        self.metrics.inputs.labels("query").inc(len(texts))
        self.metrics.prompt_tokens.inc(sum(lengths))
        return [row for row in out if row is not None]

    @staticmethod
    def _row(entry: CachedQuery, prompt_tokens: int, *, cached: bool) -> Encoded:
        return Encoded(
            entry.vector, entry.reasoning, entry.forced, entry.generated_tokens, prompt_tokens, cached
        )

    # -- documents ----------------------------------------------------------------------------
    async def documents(self, texts: list[str], endpoint: str = "/v1/embeddings") -> list[Encoded]:
        """Embed documents (no reasoning), batched with other requests' documents."""
        try:
            rows = await self._documents.encode(texts, endpoint)
        except EngineClosedError as exc:  # the engine's thread runs the document batches too
            raise APIError(503, "The server is shutting down; retry later.", code="shutting_down") from exc
        self.metrics.inputs.labels("document").inc(len(texts))
        self.metrics.prompt_tokens.inc(sum(n for _, n in rows))
        return [Encoded(vector, prompt_tokens=n) for vector, n in rows]

    # -- search -------------------------------------------------------------------------------
    async def search(
        self,
        query: str,
        k: int,
        *,
        filter: dict[str, Any] | None,
        mode: str,
        reasoning: bool | None,
        max_reasoning_tokens: int | None,
    ) -> tuple[Encoded, list[Any]]:
        """The query's encoding and its ``k`` hits."""
        store = self.store
        loop = asyncio.get_running_loop()
        if mode == "dense" or self._takes_encodings:
            # the query goes through the engine and the cache like any other
            encoded = (await self.queries([query], reasoning, max_reasoning_tokens, endpoint="/v1/search"))[0]

            def find() -> list[Any]:
                if self._takes_encodings:  # the store adds the BM25 side (expanded with the reasoning)
                    return store.search_encoded(
                        query, encoded.vector, k, reasoning=encoded.reasoning, mode=mode, filter=filter
                    ).hits
                return store.search_by_vector(encoded.vector, k, filter=filter)  # a dense-only store

            return encoded, await loop.run_in_executor(self._store_executor, find)
        # a store whose other modes take only text: it embeds the query itself
        result = await loop.run_in_executor(
            self._store_executor,
            lambda: store.search(
                query,
                k,
                filter=filter,
                mode=mode,
                reasoning=reasoning,
                max_reasoning_tokens=max_reasoning_tokens,
            ),
        )
        prompt = len(self.embeddings.prompts.build([query], "reasoning")[0])
        encoded = Encoded(np.zeros(0, dtype=np.float32), result.reasoning, result.forced, 0, prompt)
        return encoded, result.hits

    def default_search_mode(self) -> str:
        """``"hybrid"`` for a store whose collection is hybrid, else ``"dense"``."""
        return "hybrid" if self.store_has_modes and getattr(self.store, "hybrid", False) else "dense"
