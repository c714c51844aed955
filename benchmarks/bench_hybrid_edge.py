"""Hybrid search latency in qdrant-edge (Qdrant's native in-process engine), for comparison with
qdrant-client's local mode (bench_store.py --latency hybrid): the same kind of data (random unit
vectors, BM25 vectors of Cranfield abstracts cycled to 10,000 points, Cranfield queries), no
``optimize()`` (exact search), 50 queries, top 10, RRF over two prefetches of 100.

    python benchmarks/bench_hybrid_edge.py

Not used by search-r3 itself: it measures what a local backend on qdrant-edge would give.
"""

import statistics
import tempfile
import time

import numpy as np
from bench_store import corpus_texts, cranfield_queries
from qdrant_edge import (
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    Fusion,
    Modifier,
    Point,
    Prefetch,
    Query,
    QueryRequest,
    SparseVector,
    UpdateOperation,
)

from search_r3.sparse import SparseEncoder

n, dim = 10000, 576
texts, _ = corpus_texts(n)
enc = SparseEncoder()
rng = np.random.default_rng(0)
m = rng.standard_normal((n, dim)).astype(np.float32)
m /= np.linalg.norm(m, axis=1, keepdims=True)
path = tempfile.mkdtemp()
shard = EdgeShard.create(
    path,
    EdgeConfig(
        vectors={"dense": EdgeVectorParams(dim, distance=Distance.Cosine)},
        sparse_vectors={"bm25": EdgeSparseVectorParams(modifier=Modifier.Idf)},
    ),
)
docs = enc.encode_documents(texts)
for i in range(0, n, 1000):
    shard.update(
        UpdateOperation.upsert_points(
            [
                Point(
                    j,
                    vector={"dense": m[j].tolist(), "bm25": SparseVector(docs[j].indices, docs[j].values)},
                    payload={},
                )
                for j in range(i, min(n, i + 1000))
            ]
        )
    )
qs = cranfield_queries()[:50]
dense_t, hyb_t, sp_t = [], [], []
for qt in qs:
    v = rng.standard_normal(dim).astype(np.float32)
    v /= np.linalg.norm(v)
    s = enc.encode_query(qt)
    t = time.perf_counter()
    shard.query(QueryRequest(limit=10, query=Query.Nearest(v.tolist(), using="dense")))
    dense_t.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    shard.query(QueryRequest(limit=10, query=Query.Nearest(SparseVector(s.indices, s.values), using="bm25")))
    sp_t.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    shard.query(
        QueryRequest(
            limit=10,
            prefetches=[
                Prefetch(100, query=Query.Nearest(v.tolist(), using="dense")),
                Prefetch(100, query=Query.Nearest(SparseVector(s.indices, s.values), using="bm25")),
            ],
            query=Fusion.Rrf(61),
        )
    )
    hyb_t.append((time.perf_counter() - t) * 1000)
dense_ms, sparse_ms, hybrid_ms = (statistics.median(t) for t in (dense_t, sp_t, hyb_t))
print(
    f"qdrant-edge, {n} points, dim {dim}, no optimize(): dense p50 {dense_ms:.2f} ms, "
    f"sparse p50 {sparse_ms:.2f} ms, hybrid rrf p50 {hybrid_ms:.2f} ms, "
    f"hybrid / dense {hybrid_ms / dense_ms:.2f}x"
)
