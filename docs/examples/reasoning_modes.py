"""Reasoning on, off, or on a budget; greedy results are reproducible, sampling is an option.

Run:  python docs/examples/reasoning_modes.py
      Offline by default, on the shipped search-r3-smollm2-135m.
      SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
"""

import os

import numpy as np

from search_r3 import ReasoningEmbeddings

MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline
emb = ReasoningEmbeddings.from_pretrained(MODEL, max_reasoning_tokens=64)  # default budget

queries = ["why does ice float on water?", "cheap flights from Lisbon to Rome in May"]

# 1. Reasoning off: one forward pass per batch, the cost of embedding a document.
direct = emb.encode_queries(queries, reasoning=False)

# 2. Reasoning on with the instance's budget (64 new tokens at most per query).
reasoned = emb.encode_queries(queries)
for query, text, tokens, forced in zip(
    queries, reasoned.reasoning, reasoned.generated_tokens, reasoned.forced, strict=True
):
    print(f"{query!r}: {tokens} reasoning tokens, forced={bool(forced)}\n  {text[:200]!r}")

# 3. A tighter budget for latency-sensitive calls: rows that hit it are closed and marked forced.
short = emb.encode_queries(queries, max_reasoning_tokens=8)
print("forced at 8 tokens:", short.forced.tolist())

# Greedy decoding is deterministic: the same query and settings give the same vector (cacheable).
again = emb.encode_queries(queries)
print("reproducible:", bool(np.allclose(again.embeddings, reasoned.embeddings, atol=1e-5)))

# 4. Sampling (for diversity, e.g. several rollouts); a seed makes it reproducible.
sampled = emb.encode_queries(queries, do_sample=True, temperature=0.8, top_p=0.95, seed=7)
print("cosine(greedy, sampled):", np.sum(reasoned.embeddings * sampled.embeddings, axis=1).round(3))

# Switch reasoning off for the whole instance (e.g. for a latency budget):
emb.reasoning = False
print("instance default off:", emb.encode_queries(queries).reasoning == ["", ""])
