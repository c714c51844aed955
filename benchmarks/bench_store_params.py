"""Dense search latency of one embedded-engine store under each search-parameter variant.

    python benchmarks/bench_store_params.py                      # 1,000 and 10,000 points
    python benchmarks/bench_store_params.py --sizes 1000 --queries 200

Random unit vectors (dim 576, the shipped model's) are written to a hybrid store folder (as
``search-r3 index`` makes it) and the HNSW index is built (``optimize(force=True)``); then the
same queries go through each variant in rotation, so background load hits them alike: the
store's defaults (``search_by_vector``: ``hnsw_ef`` 512, int8 candidates rescored x2), no
search parameters, each parameter alone, the quantised vectors ignored, an exact search, and the
defaults without the payload. The first call of each variant is reported apart (p50 and p95
are over the calls after it). No model is loaded: the store only needs the dimension.

Prints one table per size; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
from qdrant_client import models

from search_r3.store import DENSE_VECTOR, QdrantStore, search_params


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def variants(store: QdrantStore) -> dict[str, Callable[[np.ndarray], Any]]:
    def raw(params: Any, payload: bool = True) -> Callable[[np.ndarray], Any]:
        return lambda v: store.client.query_points(
            store.collection_name,
            query=v.tolist(),
            using=DENSE_VECTOR,
            limit=10,
            search_params=params,
            with_payload=payload,
        )

    rescore = models.QuantizationSearchParams(rescore=True, oversampling=2.0)
    return {
        "store defaults (search_by_vector)": lambda v: store.search_by_vector(v, k=10),
        "no search parameters": raw(None),
        "hnsw_ef 512 only": raw(models.SearchParams(hnsw_ef=512)),
        "rescore x2 only": raw(models.SearchParams(quantization=rescore)),
        "quantised vectors ignored": raw(
            models.SearchParams(quantization=models.QuantizationSearchParams(ignore=True))
        ),
        "exact": raw(models.SearchParams(exact=True)),
        "defaults, no payload": raw(search_params(), payload=False),
    }


def bench(size: int, queries: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    matrix, q = unit_rows(rng, size, dim), unit_rows(rng, queries + 1, dim)
    embeddings = SimpleNamespace(embedding_dimension=dim)
    with tempfile.TemporaryDirectory() as tmp, QdrantStore(embeddings, "params", path=tmp) as store:
        for i in range(0, size, 1000):
            ids = [f"p{j}" for j in range(i, min(size, i + 1000))]
            store.add_vectors(matrix[i : i + 1000], ["x"] * len(ids), ids)
        start = time.perf_counter()
        store.optimize(force=True)
        index_s = time.perf_counter() - start
        info = store.client.get_collection(store.collection_name)
        calls = variants(store)
        first = {}
        for name, call in calls.items():
            start = time.perf_counter()
            call(q[0])
            first[name] = (time.perf_counter() - start) * 1000
        times: dict[str, list[float]] = {name: [] for name in calls}
        for vec in q[1:]:
            for name, call in calls.items():
                start = time.perf_counter()
                call(vec)
                times[name].append((time.perf_counter() - start) * 1000)
    kb = size * dim * 4 / 1024
    print(
        f"\n{size} points ({kb:,.0f} KB of vectors), index build {index_s:.2f} s, "
        f"{info.segments_count} segments, {queries} queries:\n"
    )
    print("| variant | p50 ms | p95 ms | first call ms |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values):.3f} | {np.percentile(values, 95):.3f} | "
            f"{first[name]:.2f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="points per store")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per variant")
    parser.add_argument("--dim", type=int, default=576, help="vector dimension (576: the shipped model)")
    args = parser.parse_args(argv)
    for size in args.sizes:
        bench(size, args.queries, args.dim)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
