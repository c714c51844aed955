"""LangChain and LlamaIndex adapters: one batched call against one call per query.

    .venv/bin/python benchmarks/bench_adapters.py                      # 8 queries, 32 tokens
    .venv/bin/python benchmarks/bench_adapters.py --n 16 --max-reasoning-tokens 64 --threads 1

Model: the shipped ``search-r3-smollm2-135m`` (offline) unless ``--model`` names another.
Queries: ``../shared/data/cranfield`` if present, else a built-in sample. For each framework
path, the batched way (one ``encode_queries`` call for all queries) is timed against what a
framework does without it (one call per query: a loop of ``invoke``, or ``asyncio.gather`` of
single async calls), in the same run, on the same model; the script checks that both ways give
the same vectors (greedy decoding), and prints the speed-up ratio.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import best_of, machine_line, print_table, queries

from search_r3 import QdrantStore, ReasoningEmbeddings


def _vectors(result: Any) -> np.ndarray:
    return np.asarray(result, dtype=np.float32)


def langchain_cases(
    emb: ReasoningEmbeddings, texts: list[str], budget: int
) -> list[tuple[str, Callable, Callable]]:
    from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever

    embeddings = SearchR3Embeddings(model=emb, max_reasoning_tokens=budget)
    store = QdrantStore(emb, "bench_adapters", path=":memory:")
    store.add_documents(texts)  # the queries as documents: any corpus does for timing
    retriever = SearchR3Retriever(store=store, k=3, max_reasoning_tokens=budget)

    def first_scores(results: list) -> np.ndarray:
        return _vectors([[d.metadata["score"] for d in docs] for docs in results])

    return [
        (
            "LangChain embed_queries vs embed_query each",
            lambda: _vectors(embeddings.embed_queries(texts)),
            lambda: _vectors([embeddings.embed_query(t) for t in texts]),
        ),
        (
            "LangChain retriever.batch vs invoke each",
            lambda: first_scores(retriever.batch(texts)),
            lambda: first_scores([retriever.invoke(t) for t in texts]),
        ),
        (
            "LangChain abatch vs gather(ainvoke)",
            lambda: first_scores(asyncio.run(retriever.abatch(texts))),
            lambda: first_scores(asyncio.run(_gather(retriever.ainvoke, texts))),
        ),
    ]


def llama_index_cases(
    emb: ReasoningEmbeddings, texts: list[str], budget: int
) -> list[tuple[str, Callable, Callable]]:
    from llama_index.embeddings.search_r3 import SearchR3Embedding

    embed_model = SearchR3Embedding(emb, max_reasoning_tokens=budget)
    return [
        (
            "LlamaIndex get_query_embedding_batch vs each",
            lambda: _vectors(embed_model.get_query_embedding_batch(texts)),
            lambda: _vectors([embed_model.get_query_embedding(t) for t in texts]),
        ),
        (
            "LlamaIndex aget_query_embedding_batch vs gather",
            lambda: _vectors(asyncio.run(embed_model.aget_query_embedding_batch(texts))),
            lambda: _vectors(asyncio.run(_gather(embed_model.aget_query_embedding, texts))),
        ),
    ]


async def _gather(fn: Callable, texts: list[str]) -> list:
    return list(await asyncio.gather(*(fn(t) for t in texts)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="search-r3-smollm2-135m", help="search-r3 model (default: shipped)"
    )
    parser.add_argument("--n", type=int, default=8, help="number of queries (default 8)")
    parser.add_argument("--max-reasoning-tokens", type=int, default=32, help="budget per query (default 32)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per way")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    emb = ReasoningEmbeddings.from_pretrained(args.model, device="cpu", dtype="float32")
    texts, source = queries(args.n)
    budget = args.max_reasoning_tokens
    print(f"model {args.model}; {len(texts)} queries from {source}; budget {budget} tokens")
    print(machine_line())
    emb.encode_queries(texts[:2], max_reasoning_tokens=4)  # warm-up

    rows = []
    cases = langchain_cases(emb, texts, budget) + llama_index_cases(emb, texts, budget)
    for name, batched, single in cases:
        t_single, v_single = best_of(single, args.repeats)
        t_batched, v_batched = best_of(batched, args.repeats)
        same = bool(np.allclose(v_batched, v_single, atol=2e-3))
        rows.append(
            [
                name,
                f"{t_single:.2f}",
                f"{t_batched:.2f}",
                f"{len(texts) / t_batched:.2f}",
                f"{t_single / t_batched:.2f}x",
                "yes" if same else "NO",
            ]
        )
        print(f"  {name}: one call per query {t_single:.2f} s, batched {t_batched:.2f} s", flush=True)
    print()
    print_table(
        [
            "path",
            "one call per query (s)",
            "one batched call (s)",
            "queries/s batched",
            "speed-up",
            "same results",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
