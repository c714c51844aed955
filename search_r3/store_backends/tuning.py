"""Index-building and search parameters of the embedded engine, in one place.

The values are set from the large-scale study (``benchmarks/bench_store_scale.py``); change them
here only. A server or cluster keeps its own collection configuration; the index values are what
search-r3 gives a new embedded (qdrant-edge) collection, and searches on every engine use
``HNSW_EF`` and rescoring unless a search passes ``hnsw_ef`` or ``exact``.
"""

from __future__ import annotations

#: HNSW graph degree: edges per node (Qdrant's default 16).
HNSW_M = 16

#: HNSW build-time candidate list size. 64 (Qdrant's default is 100) builds faster; with int8
#: rescoring and ``HNSW_EF`` below it keeps recall@10 >= 0.998 up to 250,000 points
#: (docs/guides/scaling.md).
HNSW_EF_CONSTRUCT = 64

#: Search-time candidate list size used when a search gives no ``hnsw_ef`` (``None``: Qdrant's
#: default). 512 measured recall@10 0.998 at 250,000 points (256: 0.977, 128: 0.959) at p50
#: 0.54 ms, so recall, not latency, sets it.
HNSW_EF: int | None = 512

#: With ``QUANTIZATION``, searches rescore this many times the requested number of candidates
#: with the original float vectors (without rescoring recall@10 stays near 0.90 at 250,000).
RESCORE_OVERSAMPLING = 2.0

#: Segments smaller than this many kilobytes of vectors are searched exactly (no HNSW graph).
#: 10,000 KB is Qdrant's default (about 4,400 vectors of 576 floats).
HNSW_FULL_SCAN_THRESHOLD_KB = 10_000

#: After a sync, build the search index when at least this many dense vectors are not indexed yet.
OPTIMIZE_THRESHOLD = 10_000

#: Segments above this many kilobytes get an HNSW graph when `optimize` runs (1: every segment,
#: so an optimize leaves nothing waiting; searches below ``HNSW_FULL_SCAN_THRESHOLD_KB`` stay exact).
INDEXING_THRESHOLD_KB = 1

#: Scalar (int8) quantisation of the dense vectors: 4x less memory for the search, the original
#: vectors kept (memory-mapped) for rescoring.
QUANTIZATION = True

#: HNSW build threads (0: as many as the machine has).
INDEXING_THREADS = 0
