"""`search-r3 serve` under load: 16 concurrent clients vs the same server one request at a time.

    .venv/bin/python benchmarks/bench_server.py                                  # shipped model
    .venv/bin/python benchmarks/bench_server.py --requests 500 --concurrency 16 --baseline-time-limit 300
    .venv/bin/python benchmarks/bench_server.py --threads 1                      # one engine thread
    .venv/bin/python benchmarks/bench_server.py --decode-workers 1               # one batch on 2 threads
    .venv/bin/python benchmarks/bench_server.py --model ./tiny-model --requests 200   # any model folder

Each phase starts the real command (`python -m search_r3.cli.main serve`) in a subprocess on a
free loopback port, waits for /health, warms up with two requests, then runs a bounded load
generator (httpx async): ``--concurrency`` clients each send single-query requests (reasoning on,
greedy, the query cache off, every text distinct) until ``--requests`` have been sent or the
phase's time limit has passed (requests in flight then are finished and counted). Phase 1 is
the server with ``--max-batch-size 1`` (one query decodes at a time: requests queue), phase 2
the same server with continuous batching (``--max-batch-size`` = the concurrency, and
``--decode-workers`` as given, by default ``auto``: on 2 cores two workers of 8 rows, one thread
each). The script prints queries/s, p50/p99 latency, the 5xx count of each phase, the engine's
decode workers and mean rows per worker step (from /metrics), and the ratio of the two
throughputs, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
from _common import machine_line, queries

SHIPPED = "search-r3-smollm2-135m"


@dataclass
class Phase:
    label: str
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    seconds: float = 0.0
    reasoning_tokens: int = 0
    mean_rows: float = float("nan")
    workers: int = 0

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if s == 200)

    @property
    def server_errors(self) -> int:
        return sum(1 for s in self.statuses if s >= 500)

    @property
    def qps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(args: argparse.Namespace, batch: int, port: int, workers: str = "auto") -> subprocess.Popen:
    command = [sys.executable, "-m", "search_r3.cli.main", "serve", "--model", args.model, "--device", "cpu"]
    command += [
        "--dtype",
        args.dtype,
        "--port",
        str(port),
        "--max-batch-size",
        str(batch),
        "--cache-size",
        "0",
    ]
    command += ["--log-level", "warning"]
    if args.max_reasoning_tokens is not None:
        command += ["--max-reasoning-tokens", str(args.max_reasoning_tokens)]
    command += ["--max-pending", str(10 * args.concurrency), "--threads", str(args.threads)]
    command += ["--decode-workers", workers]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("serve did not come up in 600 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()


async def load(url: str, texts: list[str], args: argparse.Namespace, phase: Phase, limit: float) -> None:
    """``args.concurrency`` clients; each sends one query per request until the texts or the time run out."""
    next_text = 0
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=limit + 600, limits=limits) as client:
        start = time.perf_counter()
        stop_at = start + limit

        async def user() -> None:
            nonlocal next_text
            while next_text < len(texts) and time.perf_counter() < stop_at:
                text = texts[next_text]
                next_text += 1
                sent = time.perf_counter()
                response = await client.post(
                    f"{url}/v1/embeddings", json={"input": text, "encoding_format": "base64"}
                )
                phase.latencies.append(time.perf_counter() - sent)
                phase.statuses.append(response.status_code)
                if response.status_code == 200:
                    phase.reasoning_tokens += response.json()["usage"]["reasoning_tokens"]

        await asyncio.gather(*(user() for _ in range(args.concurrency)))
        phase.seconds = time.perf_counter() - start


def engine_gauge(url: str, name: str) -> float:
    """One of the engine's gauges (e.g. mean rows per decoding step), from the server's /metrics."""
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    return float("nan")


def run_phase(
    args: argparse.Namespace, label: str, batch: int, texts: list[str], limit: float, workers: str = "auto"
) -> Phase:
    port = free_port()
    process = start_server(args, batch, port, workers)
    url = f"http://127.0.0.1:{port}"
    try:
        for warm in ("warm-up one", "warm-up two"):
            httpx.post(f"{url}/v1/embeddings", json={"input": warm}, timeout=600).raise_for_status()
        phase = Phase(label)
        asyncio.run(load(url, texts, args, phase, limit))
        phase.mean_rows = engine_gauge(url, "search_r3_engine_mean_batch_size")
        phase.workers = int(engine_gauge(url, "search_r3_engine_workers"))
        print(f"{label}: {phase.ok} ok in {phase.seconds:.1f} s", flush=True)
    finally:
        stop_server(process)
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=SHIPPED, help=f"model to serve (default {SHIPPED})")
    parser.add_argument("--dtype", default="float32", help="float32 (default) or bfloat16")
    parser.add_argument("--requests", type=int, default=500, help="requests per phase at most (default 500)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--max-reasoning-tokens", type=int, default=None, help="reasoning budget (default: the model's)"
    )
    parser.add_argument(
        "--time-limit", type=float, default=900, help="seconds of the batched phase at most (default 900)"
    )
    parser.add_argument(
        "--baseline-time-limit", type=float, default=300, help="seconds of the one-at-a-time phase (300)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="the server's --threads: its engine thread's CPU threads (default: the cores, as serve's)",
    )
    parser.add_argument(
        "--decode-workers",
        default="auto",
        help="the batched server's --decode-workers (default auto; the one-at-a-time server has one)",
    )
    args = parser.parse_args()

    base, source = queries(args.requests)
    # every request distinct (the cache is off anyway), so no two clients ask the very same thing
    texts = [f"{base[i % len(base)]} (request {i})" for i in range(args.requests)]
    print(machine_line())
    budget = args.max_reasoning_tokens or "the model's"
    print(
        f"model {args.model} ({args.dtype}, serve --threads {args.threads}, batched --decode-workers "
        f"{args.decode_workers}), {args.concurrency} clients, "
        f"budget {budget} tokens, "
        f"{args.requests} requests per phase, at most {args.baseline_time_limit:g} s one at a time and "
        f"{args.time_limit:g} s batched; queries: {source}",
        flush=True,
    )

    phases = [
        run_phase(args, "one at a time (--max-batch-size 1)", 1, texts, args.baseline_time_limit),
        run_phase(
            args,
            f"continuous batching (--max-batch-size {args.concurrency})",
            args.concurrency,
            texts,
            args.time_limit,
            args.decode_workers,
        ),
    ]
    print()
    print(
        "| server | decode workers | ok | 5xx | seconds | queries/s | reasoning tokens/s | rows/step "
        "| p50 s | p99 s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p in phases:
        print(
            f"| {p.label} | {p.workers} | {p.ok} | {p.server_errors} | {p.seconds:.1f} | {p.qps:.2f} | "
            f"{p.reasoning_tokens / p.seconds:.1f} | {p.mean_rows:.1f} | {p.percentile(50):.2f} | "
            f"{p.percentile(99):.2f} |"
        )
    ratio = phases[1].qps / phases[0].qps if phases[0].qps else float("nan")
    errors = sum(p.server_errors for p in phases)
    print(f"\nqueries/s ratio, batched / one at a time: {ratio:.2f}x (target >= 4x)")
    print(f"5xx responses: {errors} ({'ok' if errors == 0 else 'FAILED: expected none'})")


if __name__ == "__main__":
    main()
