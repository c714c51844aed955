"""Decoding speed: one query at a time against the memory-bandwidth floor, and continuous batching.

    .venv/bin/python benchmarks/bench_decode.py                       # float32 and bfloat16
    .venv/bin/python benchmarks/bench_decode.py --dtypes float32 --n-single 4 --n-batch 16

Model: the shipped ``search-r3-smollm2-135m`` (SmolLM2-135M-Instruct with the recipe's adapter).
Queries: ``../shared/data/cranfield`` if present, else a built-in sample. Greedy decoding.

Part 1, batch 1, per dtype:
- *transformers loop*: the model's own forward with transformers' ``DynamicCache``, a greedy
  argmax per step (the raw decode loop, no search-r3 code);
- *encode_queries, transformers cache*: today's reasoning path before the engine (``decode_backend
  = "transformers"``: the concatenating cache, the model's forward);
- *encode_queries, slots*: the new path (preallocated KV slots, lean forward, packed weights).
Both ``encode_queries`` rows must write the same reasoning and give cosine >= 0.99999 (float32).
Beside them: the floor, the bytes one step reads (every weight once, the tied embedding once as
the LM head) over the memory bandwidth measured by summing a 1 GiB tensor.

Part 2, float32: 16 queries arriving ``--interval`` seconds apart, served one at a time (each
``encode_queries`` after the previous one) against a ``QueryEngine`` (continuous batching);
queries/s from the first arrival to the last answer, and the same outputs checked.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import torch
from _common import machine_line, print_table, queries

from search_r3 import ReasoningEmbeddings
from search_r3.engine import QueryEngine

MODEL = "search-r3-smollm2-135m"


def bandwidth(gib: float = 1.0, repeats: int = 3) -> float:
    """Bytes/s of a sum over a ``gib`` GiB float32 tensor, best of ``repeats``."""
    data = torch.ones(int(gib * 2**30) // 4)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return data.numel() * 4 / best


def step_bytes(model) -> int:
    """Bytes of weights one decoding step reads: every parameter once (tied embedding: as head)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed.data_ptr() != head.data_ptr():  # the embedding table is only looked up
        total -= embed.numel() * embed.element_size()
    return total


@torch.inference_mode()
def transformers_loop(model, prompt: list[int], tokens: int) -> float:
    """Seconds per step of the raw greedy decode loop with transformers' DynamicCache."""
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    start = time.perf_counter()
    for _ in range(tokens):
        out = model(input_ids=token, past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    return (time.perf_counter() - start) / tokens


def one_at_a_time(emb: ReasoningEmbeddings, texts: list[str], budget: int):
    """Each query alone; returns (seconds, results)."""
    start, results = time.perf_counter(), []
    for text in texts:
        results.append(emb.encode_queries([text], max_reasoning_tokens=budget, show_progress_bar=False))
    return time.perf_counter() - start, results


def compare(a, b) -> tuple[int, float]:
    """(rows with the same reasoning and forced flag, lowest cosine) of two result lists."""
    same = sum(
        x.reasoning == y.reasoning and x.forced.tolist() == y.forced.tolist()
        for x, y in zip(a, b, strict=True)
    )
    cosine = min(float(x.embeddings[0] @ y.embeddings[0]) for x, y in zip(a, b, strict=True))
    return same, cosine


def part_single(dtype: str, texts: list[str], budget: int, bytes_per_s: float) -> dict:
    emb = ReasoningEmbeddings.from_pretrained(MODEL, device="cpu", dtype=dtype)
    model = emb.model
    floor = step_bytes(model) / bytes_per_s
    prompt = emb.prompts.reasoning_prompt_ids(texts[0])
    emb.encode_queries(texts[:1], max_reasoning_tokens=4, show_progress_bar=False)  # warm-up, packing
    runs: dict[str, tuple[float, list]] = {}
    loop = transformers_loop(model, prompt, budget)
    for backend in ("transformers", "slots"):
        emb.decode_backend = backend
        runs[backend] = one_at_a_time(emb, texts, budget)
    rows, tokens = [], sum(r.generated_tokens[0] for r in runs["slots"][1])
    rows.append([f"{dtype}: transformers loop (DynamicCache)", loop * 1e3, 1 / loop])
    old = runs["transformers"][0]
    labels = {"transformers": "encode_queries, transformers cache", "slots": "encode_queries, slots"}
    for backend, label in labels.items():
        seconds, results = runs[backend]
        generated = sum(r.generated_tokens[0] for r in results)
        rows.append([f"{dtype}: {label}", seconds / generated * 1e3, generated / seconds])
    same, cosine = compare(runs["transformers"][1], runs["slots"][1])
    return {
        "rows": rows,
        "floor_ms": floor * 1e3,
        "bytes": step_bytes(model),
        "ratio_vs_old": old / runs["slots"][0],
        "ratio_vs_loop": (tokens / runs["slots"][0]) * loop,
        "same": same,
        "n": len(texts),
        "cosine": cosine,
        "tokens": tokens,
        "example": runs["slots"][1][0].reasoning[0],
    }


def part_batching(texts: list[str], budget: int, interval: float, batch_size: int) -> dict:
    emb = ReasoningEmbeddings.from_pretrained(MODEL, device="cpu", dtype="float32")
    emb.encode_queries(texts[:1], max_reasoning_tokens=4, show_progress_bar=False)  # warm-up
    single_s, single = one_at_a_time(emb, texts, budget)  # a server busy from the first arrival on
    with QueryEngine(emb, max_batch_size=batch_size) as engine:
        futures: list = [None] * len(texts)

        def arrive() -> None:
            for i, text in enumerate(texts):
                futures[i] = engine.submit(text, max_reasoning_tokens=budget)
                time.sleep(interval)

        start = time.perf_counter()
        submitter = threading.Thread(target=arrive)
        submitter.start()
        submitter.join()
        batched = [f.result() for f in futures]
        engine_s = time.perf_counter() - start
        stats = engine.stats
    same, cosine = compare(single, batched)
    return {
        "single_s": single_s,
        "engine_s": engine_s,
        "same": same,
        "cosine": cosine,
        "mean_batch": stats.row_steps / max(stats.steps, 1),
        "tokens": sum(r.generated_tokens[0] for r in batched),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated (default both)")
    parser.add_argument("--n-single", type=int, default=4, help="queries decoded one at a time per dtype")
    parser.add_argument("--n-batch", type=int, default=16, help="staggered queries for continuous batching")
    parser.add_argument("--max-reasoning-tokens", type=int, default=48, help="budget per query")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between arrivals")
    parser.add_argument("--max-batch-size", type=int, default=32, help="QueryEngine max_batch_size")
    parser.add_argument("--skip-batching", action="store_true", help="only part 1")
    args = parser.parse_args()
    torch.set_num_threads(1)

    bytes_per_s = bandwidth()
    texts, source = queries(max(args.n_single, args.n_batch))
    print(f"machine: {machine_line()}")
    print(f"memory bandwidth (sum over a 1 GiB float32 tensor): {bytes_per_s / 1e9:.1f} GB/s")
    print(f"model: {MODEL}; queries from {source}; budget {args.max_reasoning_tokens}; greedy; batch 1\n")

    singles = {}
    for dtype in args.dtypes.split(","):
        singles[dtype] = part_single(dtype, texts[: args.n_single], args.max_reasoning_tokens, bytes_per_s)
    rows = []
    for res in singles.values():
        for row in res["rows"]:
            rows.append([*row[:3], res["floor_ms"], row[1] / res["floor_ms"]])
    print_table(["path (batch 1)", "ms/token", "tokens/s", "floor ms", "x floor"], rows)
    for dtype, res in singles.items():
        print(
            f"\n{dtype}: floor {res['floor_ms']:.1f} ms/step ({res['bytes'] / 1e6:.0f} MB of weights); "
            f"slots vs encode_queries on the transformers cache: {res['ratio_vs_old']:.2f}x tokens/s; "
            f"vs the raw transformers loop: {res['ratio_vs_loop']:.2f}x; same reasoning "
            f"{res['same']}/{res['n']}, min cosine {res['cosine']:.6f} ({res['tokens']} tokens)"
        )
    print(f"example reasoning: {next(iter(singles.values()))['example']!r}")

    if not args.skip_batching:
        res = part_batching(
            texts[: args.n_batch], args.max_reasoning_tokens, args.interval, args.max_batch_size
        )
        n = args.n_batch
        print(f"\ncontinuous batching, float32: {n} queries arriving {args.interval}s apart")
        print_table(
            ["server", "seconds", "queries/s", "gen. tokens/s"],
            [
                ["one at a time", res["single_s"], n / res["single_s"], res["tokens"] / res["single_s"]],
                ["QueryEngine", res["engine_s"], n / res["engine_s"], res["tokens"] / res["engine_s"]],
            ],
        )
        print(
            f"QueryEngine vs one at a time: {res['single_s'] / res['engine_s']:.2f}x queries/s; mean batch "
            f"{res['mean_batch']:.1f} rows; same reasoning {res['same']}/{n}, min cosine {res['cosine']:.6f}"
        )
    print(f"\nload average at the end: {[round(x, 2) for x in os.getloadavg()]}")


if __name__ == "__main__":
    main()
