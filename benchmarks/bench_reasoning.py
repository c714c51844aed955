"""Reasoning queries: one batch of 16 against one query at a time, same greedy outputs.

    .venv/bin/python benchmarks/bench_reasoning.py                     # 16 queries, 48 tokens
    .venv/bin/python benchmarks/bench_reasoning.py --n 32 --batch-size 16 --max-reasoning-tokens 64

Model: real SmolLM2-135M-Instruct turned into an (untrained) search-r3 folder once, in the cache.
Queries: ``../shared/data/cranfield`` if present, else a built-in sample. Both ways run the same
greedy KV-cache decoding (``ReasoningEmbeddings.encode_queries``); the script checks that they
write the same reasoning, force the same rows and give the same vectors (cosine >= 0.9999).
The untrained model rarely emits the embed token, so most rows use the whole budget: the
ratio is the one of full-length reasoning. ``--stop-bias B`` adds B to the embed token's logit,
which imitates a trained model whose reasoning stops after varied lengths (try 17 with SmolLM2):
finished rows then leave the batch early.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import machine_line, print_table, queries, real_model_dir, timed

from search_r3 import QueryEncodings, ReasoningEmbeddings


def one_at_a_time(emb: ReasoningEmbeddings, texts: list[str], budget: int) -> QueryEncodings:
    parts = [emb.encode_queries([t], max_reasoning_tokens=budget) for t in texts]
    return QueryEncodings(
        embeddings=np.concatenate([p.embeddings for p in parts]),
        reasoning=[p.reasoning[0] for p in parts],
        forced=np.concatenate([p.forced for p in parts]),
        generated_tokens=[p.generated_tokens[0] for p in parts],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=16, help="number of queries (default 16)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows decoded together (default 16)")
    parser.add_argument("--max-reasoning-tokens", type=int, default=48, help="budget per query")
    parser.add_argument("--stop-bias", type=float, default=0.0, help="added to the embed token's logit")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's); 1 resists load"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    emb = ReasoningEmbeddings.from_pretrained(real_model_dir(), device="cpu", dtype="float32")
    if args.stop_bias:
        head = emb.model.get_output_embeddings()
        head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0]))
        with torch.no_grad():
            head.bias[emb.embed_id] = args.stop_bias
    texts, source = queries(args.n)
    budget = args.max_reasoning_tokens
    emb.encode_queries(texts[:2], max_reasoning_tokens=2)  # warm-up

    runs = {
        f"batched ({args.batch_size})": lambda: emb.encode_queries(
            texts, max_reasoning_tokens=budget, batch_size=args.batch_size
        ),
        "one at a time": lambda: one_at_a_time(emb, texts, budget),
    }
    seconds, cpu_seconds, results = {}, {}, {}
    for name, fn in runs.items():
        cpu = time.process_time()
        seconds[name], results[name] = timed(fn)
        cpu_seconds[name] = time.process_time() - cpu

    batched, single = results.values()
    same_text = [a == b for a, b in zip(batched.reasoning, single.reasoning, strict=True)]
    cos = (batched.embeddings * single.embeddings).sum(axis=1)
    print(f"machine: {machine_line()}")
    print(f"queries: {len(texts)} from {source}; budget {budget} tokens; greedy; float32")
    if args.stop_bias:
        print(f"embed-token logit bias: {args.stop_bias} (imitates early stopping)")
    print(f"model: {real_model_dir()}\n")
    rows = []
    for name, secs in seconds.items():
        res = results[name]
        generated = sum(res.generated_tokens)
        rows.append(
            [
                name,
                secs,
                cpu_seconds[name],
                len(texts) / secs,
                generated / secs,
                generated,
                int(res.forced.sum()),
            ]
        )
    headers = ["method", "seconds", "CPU s", "queries/s", "gen. tokens/s", "gen. tokens", "forced"]
    print_table(headers, rows)
    lengths = sorted(batched.generated_tokens)
    middle = lengths[len(lengths) // 2]
    print(f"\ngenerated tokens per query: min {lengths[0]}, median {middle}, max {lengths[-1]}")
    names = list(seconds)
    ratio = seconds[names[1]] / seconds[names[0]]
    cpu_ratio = cpu_seconds[names[1]] / cpu_seconds[names[0]]
    print(f"batched vs one at a time: {ratio:.2f}x queries/s, {cpu_ratio:.2f}x CPU time (target >= 4x)")
    print(f"same reasoning text: {sum(same_text)}/{len(texts)}; min cosine {cos.min():.6f}")
    print(f"example reasoning for {texts[0]!r}:\n  {batched.reasoning[0]!r}")
    assert all(same_text) and (batched.forced == single.forced).all(), "greedy outputs differ"
    assert cos.min() >= 0.9999, "vectors differ"


if __name__ == "__main__":
    main()
