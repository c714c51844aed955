"""Build the service from a model and run the app under uvicorn with a draining shutdown."""

from __future__ import annotations

import time
from types import FrameType
from typing import Any

import uvicorn

from search_r3.query_cache import QueryCache
from search_r3.server.app import Lifecycle, create_app
from search_r3.server.config import ServerConfig
from search_r3.server.metrics import ServerMetrics
from search_r3.server.service import EmbeddingService


def build_service(
    embeddings: Any,
    config: ServerConfig,
    *,
    store: Any = None,
    cache: QueryCache | None = None,
    max_batch_size: int = 32,
    engine: Any = None,
    threads: int | None = None,
    workers: int | str = 1,
) -> EmbeddingService:
    """An `EmbeddingService` over a loaded model, with its continuous-batching query engine.

    Args:
        embeddings: A loaded `ReasoningEmbeddings`.
        config: The server's settings.
        store: A `QdrantStore` for ``/v1/search`` (optional).
        cache: A `QueryCache` (optional; ``None``: no cache).
        max_batch_size: Most queries decoding together in the engine (1: one at a time).
        engine: A ready engine (default: a new `search_r3.engine.QueryEngine`).
        threads: CPU threads of the new engine, which runs all the model's work (default:
            torch's count for new threads).
        workers: The new engine's decode workers (``"auto"``: one per thread where each gets
            4 rows; see `search_r3.engine.QueryEngine`).
    """
    if engine is None:
        from search_r3.engine import QueryEngine

        engine = QueryEngine(embeddings, max_batch_size=max_batch_size, threads=threads, workers=workers)
    return EmbeddingService(
        embeddings, engine, config=config, metrics=ServerMetrics(), cache=cache, store=store
    )


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that the first Ctrl-C / SIGTERM drains instead of closing at once.

    While draining, requests already being answered finish and new ones get 503 (the socket
    stays open, so clients get an answer rather than a refused connection); the server stops
    when none is left or after ``drain_timeout`` seconds. A second signal stops it at once.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_timeout: float):
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_timeout = drain_timeout
        self._deadline = float("inf")

    def begin_drain(self) -> None:
        """Start a graceful shutdown (what the first signal does; callable from any thread)."""
        if not self.lifecycle.draining:
            self._deadline = time.monotonic() + self.drain_timeout
            self.lifecycle.draining = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.draining:
            super().handle_exit(sig, frame)
        else:
            self.begin_drain()

    async def on_tick(self, counter: int) -> bool:
        idle = self.lifecycle.in_flight == 0 or time.monotonic() > self._deadline
        if self.lifecycle.draining and idle:
            self.should_exit = True
        return await super().on_tick(counter)


def make_server(
    service: EmbeddingService,
    config: ServerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
) -> GracefulServer:
    """A `GracefulServer` for the app over ``service``; call ``run()`` on it (blocks until stopped)."""
    app = create_app(service, config)
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(config.drain_timeout)),
    )
    return GracefulServer(uv_config, app.state.lifecycle, config.drain_timeout)
