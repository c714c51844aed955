"""The store at scale: qdrant-edge (Qdrant's engine in-process) against qdrant-client's local mode.

For each collection size and each HNSW configuration, on the store's collection layout (a named
``dense`` vector, cosine, dim 576 = the shipped model's; a ``bm25`` sparse vector with IDF; the
store's payload keys), with synthetic vectors:

* durable write throughput: ``update`` in batches (write-ahead log on) plus the final ``flush``;
* the index build: ``optimize()`` seconds, and how it grows with the size (a power-law fit and its
  projection to 1M points);
* query latency p50/p99 (top 10, one query at a time) before the index (full scan) and after it,
  for each ``hnsw_ef``, with recall@10 against exact search (numpy over the same vectors);
* memory: the resident set of a fresh process that opens the shard and answers queries; disk: the
  folder's size.

The local-mode baseline (on disk and in memory) writes the same points in the same run until it
reaches the largest size or its time limit, then answers the same queries (it is a brute force).
``--real-cache DIR`` adds recall on real embeddings: the shipped model's Cranfield document
vectors (read from ``--doc-cache``, the folder ``search-r3 eval --doc-cache`` fills, or embedded
into DIR) searched with its Cranfield query vectors (embedded once with reasoning, cached in DIR).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_store_scale.py --sizes 2000 --local-time-limit 10
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_store_scale.py \\
        --sizes 10000 25000 50000 100000 250000 1000000 --configs m16-ef64-int8 \\
        --hnsw-ef 32 64 128 256 --local-time-limit 180 --doc-cache DOC_CACHE --real-cache DIR \\
        --recall-max-points 1000000 --out benchmarks/results/store_scale.json

Synthetic data (``--data mix``, the default when the document vectors are available): each point
is a random mixture of two real document vectors plus Gaussian noise, normalised, so the
collection has the anisotropy of real embeddings; ``--data random`` (the default without them)
uses uniform random unit vectors, the hardest case for an approximate index. Results go to a JSON
file (``--out``; ``benchmarks/results/store_scale.json`` is the recorded run that
``docs/plots/make_plots.py`` draws, so a trial run writes to the temporary folder by default).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import CRANFIELD, machine_line, print_table  # noqa: E402

DIM = 576  # the shipped model's dimension
DENSE, SPARSE = "dense", "bm25"  # the store's vector names
DEFAULT_OUT = Path(tempfile.gettempdir()) / "store_scale.json"


# -- configurations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """One HNSW build configuration: ``m16-ef100`` or ``m16-ef64-int8``."""

    m: int
    ef_construct: int
    int8: bool

    @classmethod
    def parse(cls, text: str) -> Config:
        match = re.fullmatch(r"m(\d+)-ef(\d+)(-int8)?", text)
        if match is None:
            raise SystemExit(f"error: bad --configs entry {text!r}; write it like m16-ef100 or m16-ef64-int8")
        return cls(int(match.group(1)), int(match.group(2)), bool(match.group(3)))

    @property
    def name(self) -> str:
        return f"m{self.m}-ef{self.ef_construct}" + ("-int8" if self.int8 else "")


# -- data ---------------------------------------------------------------------------------------
class Data:
    """Deterministic synthetic vectors, generated batch by batch (so 1M points need no 2.3 GB copy)."""

    def __init__(self, kind: str, basis: np.ndarray | None, seed: int = 0, noise: float = 0.02) -> None:
        self.kind, self.basis, self.seed, self.noise = kind, basis, seed, noise

    def batch(self, start: int, count: int, stream: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream, start])
        if self.kind == "random":
            m = rng.standard_normal((count, DIM), dtype=np.float32)
        else:
            assert self.basis is not None
            i = rng.integers(0, len(self.basis), size=count)
            j = rng.integers(0, len(self.basis), size=count)
            w = rng.uniform(0.5, 1.0, size=(count, 1)).astype(np.float32)
            m = w * self.basis[i] + (1 - w) * self.basis[j]
            m += self.noise * rng.standard_normal((count, DIM), dtype=np.float32)
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        return m.astype(np.float32)

    def queries(self, n: int) -> np.ndarray:
        return self.batch(0, n, stream=1)  # another stream: held out from the collection


def point_uuid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def index_of(point_id: Any) -> int:
    return uuid.UUID(str(point_id)).int - 1


def payload(i: int, size: int) -> dict[str, Any]:
    """The store's payload keys, with a text of about ``size`` bytes."""
    text = (f"chunk {i} of a synthetic document. " * (size // 30 + 1))[:size]
    return {
        "doc_id": f"doc-{i // 4}.txt#{i % 4}",
        "page_content": text,
        "metadata": {"source": f"doc-{i // 4}.txt", "chunk": i % 4},
        "content_hash": f"{i:064x}",
    }


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of the exact top ``k`` by cosine (the vectors are unit length), best first."""
    scores = queries @ matrix.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def exact_top_streamed(data: Data, n: int, batch: int, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """`exact_top` over the first ``n`` points, batch by batch (never the whole matrix in memory)."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, n, batch):
        scores = queries @ data.batch(start, min(batch, n - start)).T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return best_ids


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)]))


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return statistics.median(ordered), p99


def folder_mb(path: Path) -> float:
    """Disk space in use (allocated blocks: the WAL's preallocated files are sparse)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process (``RssAnon``: not file pages, which the kernel can drop)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- qdrant-edge --------------------------------------------------------------------------------
def edge_config(cfg: Config, args: argparse.Namespace) -> Any:
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeOptimizersConfig,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        HnswIndexConfig,
        Modifier,
        ScalarQuantizationConfig,
        ScalarType,
    )

    quant = ScalarQuantizationConfig(ScalarType.Int8, quantile=0.99, always_ram=True) if cfg.int8 else None
    return EdgeConfig(
        vectors={DENSE: EdgeVectorParams(DIM, distance=Distance.Cosine)},
        sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
        hnsw_config=HnswIndexConfig(
            m=cfg.m,
            ef_construct=cfg.ef_construct,
            full_scan_threshold=args.full_scan_threshold,
            max_indexing_threads=args.threads,
        ),
        quantization_config=quant,
        optimizers=EdgeOptimizersConfig(indexing_threshold=args.indexing_threshold),
        max_search_threads=args.search_threads,
    )


def edge_write(shard: Any, data: Data, n: int, args: argparse.Namespace) -> dict[str, float]:
    from qdrant_edge import Point, UpdateOperation

    update_s = update_cpu = 0.0
    start = time.perf_counter()
    for s in range(0, n, args.batch):
        vectors = data.batch(s, min(args.batch, n - s))
        points = [
            Point(point_uuid(s + j), vector={DENSE: v.tolist()}, payload=payload(s + j, args.payload_bytes))
            for j, v in enumerate(vectors)
        ]
        t, cpu = time.perf_counter(), time.process_time()
        shard.update(UpdateOperation.upsert_points(points))
        update_s += time.perf_counter() - t
        update_cpu += time.process_time() - cpu
    t, cpu = time.perf_counter(), time.process_time()
    shard.flush()
    flush_s = time.perf_counter() - t
    update_cpu += time.process_time() - cpu
    total = time.perf_counter() - start
    return {
        "write_s": update_s + flush_s,
        "write_points_per_s": n / (update_s + flush_s),
        "flush_s": flush_s,
        "write_cpu_s": update_cpu,
        "end_to_end_s": total,  # with generating the vectors and building the Point objects in Python
        "end_to_end_points_per_s": n / total,
    }


def edge_query(shard: Any, queries: np.ndarray, params: Any) -> tuple[list[float], list[list[int]]]:
    from qdrant_edge import Query, QueryRequest

    times, found = [], []
    for q in queries:
        request = QueryRequest(
            limit=10, query=Query.Nearest(q.tolist(), using=DENSE), params=params, with_payload=False
        )
        t = time.perf_counter()
        hits = shard.query(request)
        times.append((time.perf_counter() - t) * 1000)
        found.append([index_of(h.id) for h in hits])
    return times, found


def search_variants(cfg: Config, args: argparse.Namespace) -> list[tuple[str, Any]]:
    from qdrant_edge import QuantizationSearchParams, SearchParams

    variants = []
    for ef in args.hnsw_ef:
        if cfg.int8:
            # rescoring only reorders the candidates unless there are more of them than the limit
            rescore = QuantizationSearchParams(rescore=True, oversampling=args.oversampling)
            variants.append(
                (
                    f"hnsw_ef={ef} rescore x{args.oversampling:g}",
                    SearchParams(hnsw_ef=ef, quantization=rescore),
                )
            )
            variants.append(
                (
                    f"hnsw_ef={ef} no rescore",
                    SearchParams(hnsw_ef=ef, quantization=QuantizationSearchParams(rescore=False)),
                )
            )
        else:
            variants.append((f"hnsw_ef={ef}", SearchParams(hnsw_ef=ef)))
    variants.append(("exact", SearchParams(exact=True, quantization=QuantizationSearchParams(ignore=True))))
    return variants


def probe(path: Path, kind: str, queries: int) -> dict[str, float]:
    """Open a stored collection in a fresh process, answer queries, report its memory."""
    out = subprocess.run(
        [sys.executable, __file__, "--probe", str(path), "--probe-kind", kind, "--queries", str(queries)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        return {"probe_error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_probe(path: Path, kind: str, n_queries: int) -> None:
    """RSS added by importing the engine, opening the collection and answering queries."""
    base, base_anon = rss_mb(), rss_mb("RssAnon")
    rng = np.random.default_rng(7)
    qs = rng.standard_normal((n_queries, DIM)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    t = time.perf_counter()
    if kind == "edge":
        from qdrant_edge import EdgeShard, Query, QueryRequest

        shard = EdgeShard.load(str(path))
        open_s = time.perf_counter() - t
        times = []
        for q in qs:
            t = time.perf_counter()
            shard.query(QueryRequest(limit=10, query=Query.Nearest(q.tolist(), using=DENSE)))
            times.append((time.perf_counter() - t) * 1000)
    else:
        from qdrant_client import QdrantClient

        client = QdrantClient(path=str(path))
        client.count("bench")
        open_s = time.perf_counter() - t
        times = []
        for q in qs:
            t = time.perf_counter()
            client.query_points("bench", query=q.tolist(), using=DENSE, limit=10)
            times.append((time.perf_counter() - t) * 1000)
    p50, _ = percentiles(times)
    print(
        json.dumps(
            {
                "open_s": open_s,
                "rss_mb": rss_mb(),
                "rss_added_mb": rss_mb() - base,
                "rss_anon_added_mb": rss_mb("RssAnon") - base_anon,
                "cold_p50_ms": p50,
            }
        )
    )


def run_edge(n: int, cfg: Config, data: Data, qs: np.ndarray, args: argparse.Namespace, index: bool) -> dict:
    from qdrant_edge import EdgeShard, SearchParams

    path = Path(tempfile.mkdtemp(prefix=f"edge-{n}-", dir=args.workdir))
    shutil.rmtree(path)
    row: dict[str, Any] = {"engine": "qdrant-edge", "config": cfg.name, "points": n, "indexed": index}
    shard = EdgeShard.create(str(path), edge_config(cfg, args))
    row.update(edge_write(shard, data, n, args))
    print(f"  qdrant-edge {cfg.name} {n:,}: wrote {row['write_points_per_s']:,.0f} points/s", flush=True)
    full_scans = n <= args.full_scan_max_points
    if full_scans:  # a full scan reads every vector: out of page cache it is a random read per page
        times, _ = edge_query(shard, qs[: args.full_scan_queries], SearchParams(exact=True))
        row["unindexed_p50_ms"], row["unindexed_p99_ms"] = percentiles(times)
    row["search"] = []
    if index:
        t, cpu = time.perf_counter(), time.process_time()
        shard.optimize()
        row["build_s"] = time.perf_counter() - t
        row["build_cpu_s"] = time.process_time() - cpu  # all the process's threads: robust to other load
        info = shard.info()
        row["segments"], row["indexed_vectors"] = info.segments_count, info.indexed_vectors_count
        print(
            f"  qdrant-edge {cfg.name} {n:,}: optimize() {row['build_s']:.1f} s, {row['segments']} segments",
            flush=True,
        )
        truth = exact_top_streamed(data, n, args.batch, qs) if n <= args.recall_max_points else None
        for label, params in search_variants(cfg, args):
            if label == "exact" and not full_scans:
                continue
            times, found = edge_query(shard, qs, params)
            p50, p99 = percentiles(times)
            rec = recall(found, truth) if truth is not None else None
            row["search"].append({"search": label, "p50_ms": p50, "p99_ms": p99, "recall_at_10": rec})
    shard.close()
    row["disk_mb"] = folder_mb(path)
    if index or full_scans:
        row.update(probe(path, "edge", 50))
    if not args.keep:
        shutil.rmtree(path, ignore_errors=True)
    return row


# -- qdrant-client local mode -------------------------------------------------------------------
def run_local(on_disk: bool, max_points: int, data: Data, qs: np.ndarray, args: argparse.Namespace) -> dict:
    import warnings

    from qdrant_client import QdrantClient, models

    path = Path(tempfile.mkdtemp(prefix="local-", dir=args.workdir))
    client = QdrantClient(path=str(path)) if on_disk else QdrantClient(":memory:")
    client.create_collection(
        "bench",
        vectors_config={DENSE: models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    n, write_s = 0, 0.0
    batch = args.batch  # the same points as the engine's
    checkpoints = sorted(c for c in args.sizes + args.write_only_sizes if c < max_points)
    mode = "local mode, on disk" if on_disk else "local mode, in memory"
    curve = []

    def latency() -> tuple[float, float]:
        times = []
        for q in qs[: args.local_queries]:
            t = time.perf_counter()
            client.query_points("bench", query=q.tolist(), using=DENSE, limit=10)
            times.append((time.perf_counter() - t) * 1000)
        return percentiles(times)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode warns above 20,000 points
        while n < max_points and write_s < args.local_time_limit:
            count = min(batch, max_points - n, *(c - n for c in checkpoints if c > n))
            vectors = data.batch(n, count)
            points = [
                models.PointStruct(
                    id=point_uuid(n + j),
                    vector={DENSE: v.tolist()},
                    payload=payload(n + j, args.payload_bytes),
                )
                for j, v in enumerate(vectors)
            ]
            t = time.perf_counter()
            client.upsert("bench", points=points, wait=True)
            write_s += time.perf_counter() - t
            n += count
            if n in checkpoints:  # the curve: cumulative write rate and latency at each size passed
                p50, p99 = latency()
                curve.append({"points": n, "write_points_per_s": n / write_s, "p50_ms": p50, "p99_ms": p99})
    print(f"  {mode}: {n:,} points in {write_s:.1f} s", flush=True)
    p50, p99 = latency()
    row = {
        "engine": mode,
        "points": n,
        "write_s": write_s,
        "write_points_per_s": n / write_s,
        "p50_ms": p50,
        "p99_ms": p99,
        "stopped_by_time_limit": n < max_points,
        "curve": [c for c in curve if c["points"] != n]
        + [{"points": n, "write_points_per_s": n / write_s, "p50_ms": p50, "p99_ms": p99}],
    }
    client.close()
    if on_disk:
        row["disk_mb"] = folder_mb(path)
        row.update(probe(path, "local", 20))
    shutil.rmtree(path, ignore_errors=True)
    return row


# -- real embeddings ----------------------------------------------------------------------------
def real_vectors(model: str, doc_cache: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's Cranfield document vectors (the evaluation's cache in ``doc_cache``, embedded
    there if absent) and its query vectors (reasoning on, cached in ``cache``)."""
    from search_r3 import ReasoningEmbeddings
    from search_r3.collections import load_cranfield
    from search_r3.evaluation import cached_corpus_vectors

    collection = load_cranfield(CRANFIELD)
    embeddings = ReasoningEmbeddings.from_pretrained(model)
    _, docs = cached_corpus_vectors(embeddings, collection, cache_dir=doc_cache, show_progress_bar=False)
    cache.mkdir(parents=True, exist_ok=True)
    query_file = cache / f"queries-{model.replace('/', '_')}-{len(collection.queries)}.npy"
    if query_file.is_file():
        queries = np.load(query_file, allow_pickle=False)
    else:
        print(
            f"embedding {len(collection.queries)} Cranfield queries with {model} (reasoning on)...",
            flush=True,
        )
        queries = embeddings.encode_queries(list(collection.queries.values())).embeddings.astype(np.float32)
        np.save(query_file, queries, allow_pickle=False)
    return docs.astype(np.float32), queries


def run_real(docs: np.ndarray, queries: np.ndarray, cfg: Config, args: argparse.Namespace) -> list[dict]:
    """Recall@10 of each search variant on real vectors; a tiny indexing threshold so they are indexed."""
    from qdrant_edge import EdgeShard, Point, UpdateOperation

    path = Path(tempfile.mkdtemp(prefix="edge-real-", dir=args.workdir))
    shutil.rmtree(path)
    small = argparse.Namespace(**{**vars(args), "indexing_threshold": 1, "full_scan_threshold": 1})
    shard = EdgeShard.create(str(path), edge_config(cfg, small))
    shard.update(
        UpdateOperation.upsert_points(
            [Point(point_uuid(i), vector={DENSE: v.tolist()}) for i, v in enumerate(docs)]
        )
    )
    shard.optimize()
    truth = exact_top(docs, queries)
    rows = []
    for label, params in search_variants(cfg, args):
        times, found = edge_query(shard, queries, params)
        p50, p99 = percentiles(times)
        rows.append(
            {
                "config": cfg.name,
                "search": label,
                "recall_at_10": recall(found, truth),
                "p50_ms": p50,
                "p99_ms": p99,
            }
        )
    shard.close()
    shutil.rmtree(path, ignore_errors=True)
    return rows


# -- reporting ----------------------------------------------------------------------------------
def growth_fit(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per config: optimize seconds (wall and CPU) = a * points^b, fitted on the three largest sizes
    that got an HNSW index, and projected to 1M points from the largest measured one."""
    fits = {}
    for name in sorted({r["config"] for r in rows if "build_s" in r}):
        pts = sorted(
            (r["points"], r["build_s"], r["build_cpu_s"])
            for r in rows
            if r["config"] == name and r.get("indexed_vectors", 0) > 0 and r["build_s"] > 0
        )[-3:]
        if len(pts) < 2:
            continue
        n = np.log([p[0] for p in pts])
        fit: dict[str, float] = {"from_points": float(pts[0][0]), "to_points": float(pts[-1][0])}
        for key, col in (("wall", 1), ("cpu", 2)):
            exponent = float(np.polyfit(n, np.log([p[col] for p in pts]), 1)[0])
            fit[f"{key}_exponent"] = exponent
            fit[f"{key}_projected_1m_s"] = float(pts[-1][col] * (1e6 / pts[-1][0]) ** exponent)
        fits[name] = fit
    return fits


def report(results: dict) -> None:
    rows = results["edge"]
    print("\n## qdrant-edge: writes, build, memory, disk\n")
    print_table(
        [
            "config",
            "points",
            "write points/s",
            "flush s",
            "unindexed p50 ms",
            "optimize s",
            "optimize CPU s",
            "segments",
            "disk MB",
            "RSS MB (reopened)",
            "of it anonymous MB",
        ],
        [
            [
                r["config"],
                f"{r['points']:,}",
                f"{r['write_points_per_s']:,.0f}",
                round(r["flush_s"], 2),
                round(r["unindexed_p50_ms"], 2) if "unindexed_p50_ms" in r else "-",
                round(r["build_s"], 1) if "build_s" in r else "-",
                round(r["build_cpu_s"], 1) if "build_cpu_s" in r else "-",
                r.get("segments", "-"),
                round(r["disk_mb"], 1),
                round(r.get("rss_added_mb", float("nan")), 1),
                round(r.get("rss_anon_added_mb", float("nan")), 1),
            ]
            for r in rows
        ],
    )
    print("\n## qdrant-edge: search once indexed (top 10, one query at a time)\n")
    print_table(
        ["config", "points", "search", "p50 ms", "p99 ms", "recall@10"],
        [
            [
                r["config"],
                f"{r['points']:,}",
                s["search"],
                round(s["p50_ms"], 2),
                round(s["p99_ms"], 2),
                "-" if s["recall_at_10"] is None else round(s["recall_at_10"], 4),
            ]
            for r in rows
            for s in r["search"]
        ],
    )
    if results.get("local"):
        print("\n## qdrant-client local mode (same points, same run)\n")
        print_table(
            [
                "engine",
                "points",
                "write points/s",
                "p50 ms",
                "p99 ms",
                "disk MB",
                "RSS MB (reopened)",
                "time limit hit",
            ],
            [
                [
                    r["engine"],
                    f"{r['points']:,}",
                    f"{r['write_points_per_s']:,.0f}",
                    round(r["p50_ms"], 2),
                    round(r["p99_ms"], 2),
                    round(r["disk_mb"], 1) if "disk_mb" in r else "-",
                    round(r["rss_added_mb"], 1) if "rss_added_mb" in r else "-",
                    r["stopped_by_time_limit"],
                ]
                for r in results["local"]
            ],
        )
        for loc in results["local"]:
            same = [r for r in rows if r["points"] >= loc["points"]]
            if same:
                e = min(same, key=lambda r: r["points"])
                ratio = e["write_points_per_s"] / loc["write_points_per_s"]
                where = f"qdrant-edge at {e['points']:,} vs {loc['engine']} at {loc['points']:,}"
                print(f"\nwrites, {where}: {ratio:,.1f}x")
    if results.get("real"):
        print("\n## recall@10 on real embeddings (Cranfield documents, the model's query vectors)\n")
        print_table(
            ["config", "search", "recall@10", "p50 ms"],
            [
                [r["config"], r["search"], round(r["recall_at_10"], 4), round(r["p50_ms"], 3)]
                for r in results["real"]
            ],
        )
    if results.get("growth"):
        print("\n## index build growth (optimize seconds = a * points^b, on the largest sizes)\n")
        print_table(
            [
                "config",
                "fitted on",
                "b (wall)",
                "1M projected s (wall)",
                "b (CPU)",
                "1M projected CPU s",
                "threads",
            ],
            [
                [
                    k,
                    f"{v['from_points']:,.0f}-{v['to_points']:,.0f}",
                    round(v["wall_exponent"], 2),
                    round(v["wall_projected_1m_s"]),
                    round(v["cpu_exponent"], 2),
                    round(v["cpu_projected_1m_s"]),
                    results["args"]["threads"],
                ]
                for k, v in results["growth"].items()
            ],
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10000, 25000, 50000, 100000],
        help="collection sizes that are written, indexed and searched",
    )
    parser.add_argument(
        "--write-only-sizes",
        type=int,
        nargs="*",
        default=[],
        help="sizes only written and searched without an index (e.g. 1000000)",
    )
    parser.add_argument(
        "--configs", nargs="+", default=["m16-ef64"], help="HNSW configs: m16-ef100, m16-ef64-int8, ..."
    )
    parser.add_argument(
        "--hnsw-ef", type=int, nargs="+", default=[32, 64, 128], help="search-time ef values to measure"
    )
    parser.add_argument(
        "--oversampling",
        type=float,
        default=2.0,
        help="int8 configs: candidates rescored with the original vectors, as a multiple of the limit",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="max_indexing_threads of the HNSW build (0 = all CPUs)"
    )
    parser.add_argument("--search-threads", type=int, default=1, help="the shard's max_search_threads")
    parser.add_argument(
        "--indexing-threshold",
        type=int,
        default=10000,
        help="KB of vectors before a segment gets an HNSW index (Qdrant's default 10000)",
    )
    parser.add_argument(
        "--full-scan-threshold",
        type=int,
        default=10000,
        help="KB under which a search scans instead of walking the graph",
    )
    parser.add_argument("--batch", type=int, default=1000, help="points per write")
    parser.add_argument("--payload-bytes", type=int, default=256, help="length of each point's text")
    parser.add_argument("--queries", type=int, default=100, help="queries per search variant")
    parser.add_argument("--full-scan-queries", type=int, default=20, help="queries for the unindexed latency")
    parser.add_argument(
        "--full-scan-max-points",
        type=int,
        default=250000,
        help="largest size whose full-scan (exact) latency is measured: out of the page cache, a full scan "
        "of the mmap'd vectors reads them page by page",
    )
    parser.add_argument(
        "--recall-max-points", type=int, default=200000, help="largest size whose recall is computed"
    )
    parser.add_argument(
        "--data",
        choices=["mix", "random"],
        default=None,
        help="synthetic vectors (default: mix when the document vectors are found)",
    )
    parser.add_argument(
        "--doc-cache",
        type=Path,
        default=None,
        help="folder of the shipped model's cached Cranfield document vectors (search-r3 eval --doc-cache): "
        "the basis of --data mix, and reused by --real-cache",
    )
    parser.add_argument(
        "--real-cache",
        type=Path,
        default=None,
        help="measure recall on real Cranfield vectors (cached in this folder)",
    )
    parser.add_argument("--model", default="search-r3-smollm2-135m", help="model of the real vectors")
    parser.add_argument(
        "--local-time-limit",
        type=float,
        default=120.0,
        help="seconds of writes for each local-mode baseline (0 skips it)",
    )
    parser.add_argument(
        "--local-max-points",
        type=int,
        default=250000,
        help="most points for each local-mode baseline (it holds them all in Python memory)",
    )
    parser.add_argument("--local-queries", type=int, default=20, help="queries for the local-mode latency")
    parser.add_argument(
        "--workdir", default=None, help="folder for the temporary collections (default: the system's)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the collections")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    parser.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-kind", default="edge", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        run_probe(args.probe, args.probe_kind, args.queries)
        return {}
    if any(n < 1 for n in args.sizes + args.write_only_sizes):
        parser.error("sizes must be positive")
    configs = [Config.parse(c) for c in args.configs]
    try:
        import qdrant_edge  # noqa: F401
    except ImportError:
        raise SystemExit("error: this benchmark needs qdrant-edge: pip install qdrant-edge-py") from None

    basis = None
    vector_dir = args.doc_cache or args.real_cache
    doc_files = sorted(vector_dir.glob("corpus-*.npy")) if vector_dir and vector_dir.is_dir() else []
    if args.data != "random" and doc_files:
        basis = np.load(doc_files[0], allow_pickle=False).astype(np.float32)
    if args.data == "mix" and basis is None:
        parser.error(f"--data mix needs the cached document vectors in --doc-cache ({args.doc_cache})")
    data = Data("mix" if basis is not None else "random", basis)
    qs = data.queries(args.queries)
    print(machine_line())
    what = f"two-document mixtures of {doc_files[0].name}" if basis is not None else "uniform unit vectors"
    print(f"data: {data.kind} ({what}), dim {DIM}")

    results: dict[str, Any] = {
        "machine": machine_line(),
        "data": data.kind,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    results["edge"] = []
    started = time.perf_counter()
    for cfg in configs:
        for n in sorted(args.sizes):
            results["edge"].append(run_edge(n, cfg, data, qs, args, index=True))
            _save(args.out, results)
    for n in sorted(args.write_only_sizes):
        results["edge"].append(run_edge(n, configs[0], data, qs, args, index=False))
        _save(args.out, results)
    results["growth"] = growth_fit(results["edge"])
    results["local"] = []
    if args.local_time_limit > 0:
        largest = min(max(args.sizes + args.write_only_sizes), args.local_max_points)
        for on_disk in (True, False):
            results["local"].append(run_local(on_disk, largest, data, qs, args))
            _save(args.out, results)
    if args.real_cache is not None:
        docs, queries = real_vectors(args.model, args.doc_cache or args.real_cache, args.real_cache)
        results["real"] = [row for cfg in configs for row in run_real(docs, queries, cfg, args)]
    results["seconds"] = time.perf_counter() - started
    _save(args.out, results)
    report(results)
    print(f"\nresults: {args.out} ({results['seconds']:.0f} s)")
    return results


def _save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
