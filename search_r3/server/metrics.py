"""Prometheus metrics of one server (its own registry, so several apps in a process never clash)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServerMetrics:
    """Counters, histograms and gauges exposed at ``GET /metrics`` (names start ``search_r3_``).

    Args:
        window_s: Span over which ``search_r3_reasoning_tokens_per_second`` is averaged.
    """

    def __init__(self, window_s: float = 60.0):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "search_r3_requests", "HTTP requests answered", ["endpoint", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "search_r3_request_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.inputs = Counter("search_r3_inputs", "Texts embedded", ["input_type"], registry=r)
        self.batch_size = Histogram(
            "search_r3_batch_size",
            "Texts per model call (documents) or per engine step (queries)",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "search_r3_queue_seconds",
            "Time a text waited in the queue: documents until their model call, queries until they "
            "joined the decoding batch (cache hits never wait and are not counted)",
            ["endpoint", "kind"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("search_r3_prompt_tokens", "Prompt tokens embedded", registry=r)
        self.reasoning_tokens = Counter(
            "search_r3_reasoning_tokens", "Reasoning tokens generated", registry=r
        )
        self.cache_hits = Counter("search_r3_cache_hits", "Queries answered from the query cache", registry=r)
        self.cache_misses = Counter("search_r3_cache_misses", "Queries that had to be encoded", registry=r)
        self.in_flight = Gauge("search_r3_in_flight_requests", "Requests being answered", registry=r)
        self.pending_queries = Gauge(
            "search_r3_pending_queries", "Queries submitted to the engine, not yet done", registry=r
        )
        self.cache_entries = Gauge("search_r3_cache_entries", "Entries in the query cache", registry=r)
        self.tokens_per_second = Gauge(
            "search_r3_reasoning_tokens_per_second",
            f"Reasoning tokens generated per second over the last {window_s:g} s",
            registry=r,
        )
        self._window_s = window_s
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.tokens_per_second.set_function(self._tokens_per_second)

    def watch_engine(self, engine: Any) -> None:
        """Gauges read from the query engine at scrape time (rows decoding, waiting, batch size)."""
        r = self.registry
        if hasattr(engine, "live"):
            Gauge("search_r3_engine_live_queries", "Queries decoding now", registry=r).set_function(
                lambda: engine.live
            )
        if hasattr(engine, "pending"):
            Gauge("search_r3_engine_waiting_queries", "Queries waiting for a row", registry=r).set_function(
                lambda: engine.pending
            )
        if hasattr(engine, "workers"):
            Gauge(
                "search_r3_engine_workers", "Decode workers (threads with a batch of their own)", registry=r
            ).set_function(lambda: engine.workers)
        stats = getattr(engine, "stats", None)
        if stats is not None and hasattr(stats, "row_steps"):
            Gauge("search_r3_engine_steps", "Decoding steps run", registry=r).set_function(
                lambda: stats.steps
            )
            Gauge(
                "search_r3_engine_mean_batch_size", "Mean rows per decoding step since start", registry=r
            ).set_function(lambda: stats.row_steps / stats.steps if stats.steps else 0.0)

    def add_reasoning_tokens(self, count: int) -> None:
        """Count generated tokens (for the counter and the windowed rate)."""
        if count <= 0:
            return
        self.reasoning_tokens.inc(count)
        with self._lock:
            self._recent.append((time.monotonic(), count))

    def _tokens_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - self._window_s:
                self._recent.popleft()
            total = sum(c for _, c in self._recent)
        return total / self._window_s

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
