"""Benchmark the Qdrant store: indexing overhead over embedding alone, and search latency.

    python benchmarks/bench_store.py                       # demo model (built once), Cranfield texts
    python benchmarks/bench_store.py --model ./my-model --docs 512 --repeats 3
    python benchmarks/bench_store.py --skip-indexing --sizes 1000 10000 100000

1. Indexing: the same documents are (a) embedded alone in the chunks the store uses, (b)
   embedded alone in one call, (c) embedded and written by ``QdrantStore.add_documents`` into an
   embedded (local-mode) store folder, (d) written as ready-made vectors (store cost only).
   Repeats alternate (a)-(d) and keep each one's best time, so background load hits them alike.
   Target: (c) / (a) - 1 under 10 %.
2. Search latency: random unit vectors of the model's dimension at each size in a store folder
   (the embedded engine, index built), 200 queries through ``search_by_vector`` (top 10),
   against a NumPy brute-force top-10 over the same matrix as the baseline, and against the time
   to embed one query without reasoning.
3. Hybrid latency (``--hybrid-sizes``): a hybrid store of random unit vectors with the BM25
   vectors of real texts (Cranfield abstracts, cycled), Cranfield queries; dense, sparse and
   hybrid (RRF, DBSF) search of the same collection, timed query by query in rotation, and a
   dense-only collection of the same vectors. Once per engine of ``--backends``: ``edge`` (the
   embedded Qdrant engine, the default for a folder; its HNSW index built after loading, as
   ``index`` does past the optimize threshold) and ``memory`` (qdrant-client's ``:memory:``).
   Target: hybrid p50 <= 2x dense p50.

    python benchmarks/bench_store.py --skip-indexing --latency hybrid --hybrid-sizes 10000

Prints a table with ratios; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from search_r3.model import ReasoningEmbeddings
from search_r3.store import QdrantStore

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"


def corpus_texts(n: int, which: str = "cranfield") -> tuple[list[str], str]:
    """``n`` real texts: Cranfield abstracts (when present), else the demo corpus (cycled, numbered)."""
    if which == "cranfield" and (CRANFIELD / "cran.all.1400").is_file():
        from search_r3.collections import load_cranfield

        c = load_cranfield(CRANFIELD)
        texts = [c.doc_text(d) for d in c.doc_ids() if c.doc_text(d).strip()]
        source = "Cranfield abstracts"
    else:
        from search_r3.demo import demo_documents

        texts = [d.full_text for d in demo_documents()]
        source = "demo corpus (cycled)"
    out = [texts[i % len(texts)] + ("" if i < len(texts) else f" ({i // len(texts)})") for i in range(n)]
    return out, source


def best_of(times: list[float]) -> float:
    return min(times)


def bench_indexing(emb: ReasoningEmbeddings, texts: list[str], batch: int, repeats: int) -> dict[str, float]:
    ids = [f"doc-{i}" for i in range(len(texts))]
    results: dict[str, list[float]] = {"chunks": [], "one_call": [], "store": [], "store_vectors": []}
    vectors = None
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            emb.encode_documents(texts[i : i + batch], show_progress_bar=False)
        results["chunks"].append(time.perf_counter() - start)

        start = time.perf_counter()
        vectors = emb.encode_documents(texts, show_progress_bar=False)
        results["one_call"].append(time.perf_counter() - start)

        with tempfile.TemporaryDirectory() as tmp, QdrantStore(emb, "bench", path=tmp) as store:
            start = time.perf_counter()
            store.add_documents(texts, ids=ids, batch_size=batch, show_progress_bar=False)
            results["store"].append(time.perf_counter() - start)
            assert store.count() == len(texts)

        with tempfile.TemporaryDirectory() as tmp, QdrantStore(emb, "bench", path=tmp) as store:
            start = time.perf_counter()
            for i in range(0, len(texts), batch):
                store.add_vectors(vectors[i : i + batch], texts[i : i + batch], ids[i : i + batch])
            results["store_vectors"].append(time.perf_counter() - start)
        print(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()))
    return {k: best_of(v) for k, v in results.items()}


def bench_search(
    emb: ReasoningEmbeddings, sizes: list[int], queries: int, seed: int = 0
) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    dim = emb.embedding_dimension
    rows = []
    for size in sizes:
        matrix = rng.standard_normal((size, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        q = rng.standard_normal((queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        with tempfile.TemporaryDirectory() as tmp, QdrantStore(emb, "latency", path=tmp) as store:
            start = time.perf_counter()
            chunk = 1000
            for i in range(0, size, chunk):
                ids = [f"p{j}" for j in range(i, min(size, i + chunk))]
                store.add_vectors(matrix[i : i + chunk], ["x"] * len(ids), ids)
            store.optimize(force=True)  # the embedded engine's index, as index() builds it
            load_s = time.perf_counter() - start
            store.search_by_vector(q[0], k=10)  # warm up
            store_ms, found = [], []
            for vec in q:
                start = time.perf_counter()
                hits = store.search_by_vector(vec, k=10)
                store_ms.append((time.perf_counter() - start) * 1000)
                found.append({h.id for h in hits})
            # sanity: an exact search's best hit is the brute-force best
            best = int(np.argmax(matrix @ q[-1]))
            exact = store.search_by_vector(q[-1], k=10, exact=True)
            assert exact[0].id == f"p{best}", (exact[0].id, best)
        # recall@10 of the (index) search against the exact top 10; random vectors are HNSW's hardest case
        truth = [{f"p{j}" for j in np.argsort(-(matrix @ vec))[:10]} for vec in q]
        recall = statistics.mean(len(f & t) / 10 for f, t in zip(found, truth, strict=True))
        numpy_ms = []
        for vec in q:
            start = time.perf_counter()
            scores = matrix @ vec
            top = np.argpartition(-scores, 10)[:10]
            top[np.argsort(-scores[top])]
            numpy_ms.append((time.perf_counter() - start) * 1000)
        rows.append(
            {
                "size": size,
                "store_p50": statistics.median(store_ms),
                "store_p95": float(np.percentile(store_ms, 95)),
                "numpy_p50": statistics.median(numpy_ms),
                "load_s": load_s,
                "recall": recall,
            }
        )
        last = rows[-1]
        print(
            f"  {size:>7} points: store p50 {last['store_p50']:.2f} ms, numpy p50 {last['numpy_p50']:.3f} ms"
        )
    return rows


def bench_hybrid(
    emb: ReasoningEmbeddings, sizes: list[int], queries: int, seed: int = 0, backend: str = "edge"
) -> list[dict[str, float]]:
    """Search latency of each mode on one hybrid collection of ``backend`` (see the module docstring)."""
    from contextlib import ExitStack

    from search_r3.store import HybridSettings

    rng = np.random.default_rng(seed)
    dim = emb.embedding_dimension
    query_texts = cranfield_queries()
    rrf, dbsf = HybridSettings(fusion="rrf"), HybridSettings(fusion="dbsf")
    rows = []
    for size in sizes:
        texts, _ = corpus_texts(size, "cranfield")
        matrix = rng.standard_normal((size, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        q = rng.standard_normal((queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        ids = [f"p{j}" for j in range(size)]
        with ExitStack() as stack:
            if backend == "memory":
                paths: list[str | Path] = [":memory:", ":memory:"]
            else:
                paths = [Path(stack.enter_context(tempfile.TemporaryDirectory())) for _ in range(2)]
            hybrid = stack.enter_context(QdrantStore(emb, "hybrid", path=paths[0]))
            dense_only = stack.enter_context(QdrantStore(emb, "dense", path=paths[1], hybrid=False))
            start = time.perf_counter()
            for i in range(0, size, 1000):
                hybrid.add_vectors(matrix[i : i + 1000], texts[i : i + 1000], ids[i : i + 1000])
            load_s = time.perf_counter() - start
            start = time.perf_counter()
            hybrid.optimize(force=True)  # what index() does past the threshold; a no-op in memory
            index_s = time.perf_counter() - start
            for i in range(0, size, 1000):
                dense_only.add_vectors(matrix[i : i + 1000], texts[i : i + 1000], ids[i : i + 1000])
            dense_only.optimize(force=True)
            h, d = hybrid, dense_only
            calls = {
                "dense-only collection": lambda v, sp, d=d: d.search_by_vector(v, k=10),
                "dense": lambda v, sp, h=h: h.search_by_vector(v, k=10),
                "sparse": lambda v, sp, h=h: h.search_by_vectors(None, sp, 10, mode="sparse"),
                "hybrid rrf": lambda v, sp, h=h: h.search_by_vectors(v, sp, 10, settings=rrf),
                "hybrid dbsf": lambda v, sp, h=h: h.search_by_vectors(v, sp, 10, settings=dbsf),
            }
            times: dict[str, list[float]] = {name: [] for name in calls}
            sparse_ms = []
            for i, vec in enumerate(q):
                start = time.perf_counter()
                sparse = hybrid.sparse_query(query_texts[i % len(query_texts)])
                sparse_ms.append((time.perf_counter() - start) * 1000)
                for name, call in calls.items():  # in rotation: background load hits all alike
                    start = time.perf_counter()
                    hits = call(vec, sparse)
                    times[name].append((time.perf_counter() - start) * 1000)
                    assert hits or name == "sparse"
        row: dict[str, float] = {
            "size": size,
            "load_s": load_s,
            "index_s": index_s,
            "encode_sparse": statistics.median(sparse_ms),
        }
        row.update({name: statistics.median(t) for name, t in times.items()})
        rows.append(row)
        print(f"  {backend} {size:>7} points: " + ", ".join(f"{n} {row[n]:.2f} ms" for n in calls))
    return rows


def cranfield_queries() -> list[str]:
    if (CRANFIELD / "cran.qry").is_file():
        from search_r3.collections import load_cranfield

        return list(load_cranfield(CRANFIELD).queries.values())
    return ["boundary layer transition", "heat transfer in hypersonic flow", "wing flutter at high speed"]


def query_embed_ms(emb: ReasoningEmbeddings, repeats: int = 5) -> float:
    query = ["why does bread go stale so quickly"]
    emb.encode_queries(query, reasoning=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        emb.encode_queries(query, reasoning=False)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="search-r3 model (default: the demo model, built once)")
    parser.add_argument("--docs", type=int, default=256, help="documents for the indexing benchmark")
    parser.add_argument("--batch-size", type=int, default=64, help="store batch size (documents per upsert)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the indexing benchmark (best kept)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="store sizes for latency")
    parser.add_argument("--queries", type=int, default=200, help="queries per size for latency")
    parser.add_argument(
        "--texts",
        choices=["cranfield", "demo"],
        default="cranfield",
        help="Cranfield abstracts (~200 tokens, if ../shared/data/cranfield exists) or demo paragraphs (~80)",
    )
    parser.add_argument("--skip-indexing", action="store_true")
    parser.add_argument(
        "--latency",
        choices=["dense", "hybrid", "both"],
        default="both",
        help="which latency benchmarks to run (default both)",
    )
    parser.add_argument(
        "--hybrid-sizes", type=int, nargs="+", default=[10000], help="store sizes for the hybrid latency"
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["edge", "memory"],
        default=["edge", "memory"],
        help="engines for the hybrid latency: edge (embedded engine, folder) and memory (qdrant-client)",
    )
    args = parser.parse_args(argv)

    if args.model is None:
        from search_r3.demo import demo_model_path

        args.model = str(demo_model_path())
    emb = ReasoningEmbeddings.from_pretrained(args.model, device="cpu", dtype="float32")
    print(
        f"model {args.model} (dim {emb.embedding_dimension}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.machine()}"
    )

    if not args.skip_indexing:
        texts, source = corpus_texts(args.docs, args.texts)
        print(f"\nindexing {len(texts)} {source}, batches of {args.batch_size}, best of {args.repeats}:")
        t = bench_indexing(emb, texts, args.batch_size, args.repeats)
        n = len(texts)
        print("\n| path | seconds | docs/s | vs embedding alone (same chunks) |")
        print("|---|---:|---:|---:|")
        for label, key in (
            ("embedding alone, store-sized chunks", "chunks"),
            ("embedding alone, one call", "one_call"),
            ("QdrantStore.add_documents (embed + write)", "store"),
            ("store write only (ready vectors)", "store_vectors"),
        ):
            print(f"| {label} | {t[key]:.2f} | {n / t[key]:.1f} | {t[key] / t['chunks']:.3f}x |")
        print(
            f"\nstore overhead: add_documents / embedding alone = {t['store'] / t['chunks']:.3f} "
            f"({(t['store'] / t['chunks'] - 1) * 100:+.1f} %); write-only share "
            f"{t['store_vectors'] / t['store'] * 100:.1f} % of add_documents"
        )

    dim = emb.embedding_dimension
    if args.latency in ("hybrid", "both"):
        print(f"\nhybrid search latency (dim {dim}), top 10, {args.queries} queries:")
        hybrid_rows = [
            {**row, "backend": backend}
            for backend in args.backends
            for row in bench_hybrid(emb, args.hybrid_sizes, args.queries, backend=backend)
        ]
        print(
            "\n| engine | points | load s | index s | dense-only collection p50 ms | dense p50 ms "
            "| sparse p50 ms | hybrid rrf p50 ms | hybrid dbsf p50 ms | hybrid rrf / dense "
            "| hybrid dbsf / dense "
            "| BM25 query encoding p50 ms |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in hybrid_rows:
            print(
                f"| {r['backend']} | {r['size']} | {r['load_s']:.1f} | {r['index_s']:.1f} | "
                f"{r['dense-only collection']:.2f} | {r['dense']:.2f} | {r['sparse']:.2f} | "
                f"{r['hybrid rrf']:.2f} | {r['hybrid dbsf']:.2f} | {r['hybrid rrf'] / r['dense']:.2f}x | "
                f"{r['hybrid dbsf'] / r['dense']:.2f}x | {r['encode_sparse']:.3f} |"
            )
    if args.latency == "hybrid":
        return 0
    print(f"\nsearch latency, random unit vectors (dim {dim}), top 10, {args.queries} queries:")
    rows = bench_search(emb, args.sizes, args.queries)
    embed_ms = query_embed_ms(emb)
    print(
        "\n| points | store p50 ms | store p95 ms | numpy brute force p50 ms | store / numpy "
        "| load + index s "
        "| recall@10 vs exact |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['store_p50']:.2f} | {r['store_p95']:.2f} | {r['numpy_p50']:.3f} | "
            f"{r['store_p50'] / r['numpy_p50']:.1f}x | {r['load_s']:.1f} | {r['recall']:.3f} |"
        )
    print(
        f"\nembedding one query without reasoning: {embed_ms:.1f} ms "
        f"(store search at {rows[-1]['size']} points = {rows[-1]['store_p50'] / embed_ms * 100:.1f} % of it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
