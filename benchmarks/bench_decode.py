"""Decoding speed: one query at a time against the memory-bandwidth floor, and continuous batching.

    .venv/bin/python benchmarks/bench_decode.py                       # float32 and bfloat16
    .venv/bin/python benchmarks/bench_decode.py --dtypes float32 --repeats 5 --skip-batching
    .venv/bin/python benchmarks/bench_decode.py --model runs/v2/model     # another model folder

Model: the shipped ``search-r3-smollm2-135m`` (SmolLM2-135M-Instruct with the recipe's adapter),
or ``--model``.
Queries: ``../shared/data/cranfield`` if present, else a built-in sample. Greedy decoding.

Part 1, batch 1, per dtype, each path timed ``--repeats`` times in alternating order (medians):
- *transformers loop*: the model's own forward with transformers' ``DynamicCache``, a greedy
  argmax per step (the raw decode loop, no search-r3 code);
- *encode_queries, transformers cache (baseline)*: today's reasoning path before the engine
  (``decode_backend = "transformers"``: the concatenating cache, the model's forward);
- *encode_queries, slots*: the slots path in four stages, to show where the gain comes from:
  the generic step (the path measured before, preallocated KV slots and packed weights), then
  with the one-row step (fused norms, rotary, attention and residual additions), then with the
  bfloat16-checked LM head (``search_r3.head_argmax``; float32 only), then with prompt-lookup
  speculation (``search_r3.speculation``: drafted tokens checked in one forward): the new path,
  with its acceptance rate (kept drafted tokens / drafted) and tokens per forward.
Every path must generate the same token ids as the baseline, in every repeat (the script exits
with an error otherwise). Beside them: the floor, the bytes one step reads (every weight once,
the tied embedding once as the LM head) over the memory bandwidth measured by summing a 1 GiB
tensor, and the floor of the bytes the new path reads (its head as the bfloat16 copy).

Part 2, float32: 16 queries arriving ``--interval`` seconds apart, served one at a time (each
``encode_queries`` after the previous one) against a ``QueryEngine`` (continuous batching);
queries/s from the first arrival to the last answer, and the same outputs checked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import torch
from _common import machine_line, print_table, queries

from search_r3 import ReasoningEmbeddings, decoding, slot_decoder, speculation
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


class TokenLog:
    """The generated token ids of every row the decoder finishes (to compare paths token by token),
    and the speculation counters of every decoder made."""

    def __init__(self):
        self.ids: list[list[int]] = []
        self.decoders: list = []
        self._finish, self._init = decoding.Decoder._finish, decoding.Decoder.__init__
        log = self

        def finish(decoder, row, hidden):
            log.ids.append(list(row.generated))
            return log._finish(decoder, row, hidden)

        def init(decoder, *args, **kwargs):
            log._init(decoder, *args, **kwargs)
            log.decoders.append(decoder)

        decoding.Decoder._finish, decoding.Decoder.__init__ = finish, init

    def take(self) -> list[list[int]]:
        ids, self.ids, self.decoders = self.ids, [], []
        return ids

    def speculation(self) -> decoding.SpeculationStats:
        """The counters of the decoders made since the last ``take``, summed."""
        total = decoding.SpeculationStats()
        for decoder in self.decoders:
            total.forwards += decoder.speculation.forwards
            total.drafted += decoder.speculation.drafted
            total.accepted += decoder.speculation.accepted
        return total


def compare(a, b) -> tuple[int, float]:
    """(rows with the same reasoning and forced flag, lowest cosine) of two result lists."""
    same = sum(
        x.reasoning == y.reasoning and x.forced.tolist() == y.forced.tolist()
        for x, y in zip(a, b, strict=True)
    )
    cosine = min(float(x.embeddings[0] @ y.embeddings[0]) for x, y in zip(a, b, strict=True))
    return same, cosine


SPECULATE = speculation.DEFAULT_SPECULATIVE_TOKENS

#: The batch-1 paths timed, (label, decode backend, lean one-row step, bf16-checked head,
#: speculative tokens). The last is what ``encode_queries`` runs; the others are the slots path
#: as it was before each lever (kept for the profile of where the gain comes from).
PATHS = [
    ("encode_queries, transformers cache (baseline)", "transformers", False, False, 0),
    ("encode_queries, slots: generic step, float32 head", "slots", False, False, 0),
    ("encode_queries, slots: + one-row step", "slots", True, False, 0),
    ("encode_queries, slots: + bf16-checked head", "slots", True, True, 0),
    ("encode_queries, slots: + prompt-lookup speculation (new)", "slots", True, True, SPECULATE),
]


def _set_levers(model, lean: bool, checked_head: bool) -> bool:
    """Turn the one-row step and the checked head of the model's slot weights on or off.

    Returns whether the checked head exists for this model (float32 on a oneDNN CPU)."""
    weights = slot_decoder._weights(model, True)
    if not hasattr(weights, "_bench_greedy"):
        weights._bench_greedy, weights._bench_lean = weights.greedy, weights.lean
    weights.lean = lean and weights._bench_lean
    weights.greedy = weights._bench_greedy if checked_head else None
    return weights._bench_greedy is not None


def part_single(
    model_name: str, dtype: str, texts: list[str], budget: int, bandwidths: list, repeats: int, log
) -> dict:
    emb = ReasoningEmbeddings.from_pretrained(model_name, device="cpu", dtype=dtype)
    model = emb.model
    checked = _set_levers(model, True, True)
    head = model.get_output_embeddings().weight
    # bytes the new path reads per step: the float32 head is read as its bfloat16 copy
    new_bytes = step_bytes(model) - (head.numel() * (head.element_size() - 2) if checked else 0)
    prompt = emb.prompts.reasoning_prompt_ids(texts[0])
    for backend in ("transformers", "slots"):  # warm-up, packing
        emb.decode_backend = backend
        emb.encode_queries(texts[:1], max_reasoning_tokens=4, show_progress_bar=False)
    loops = []  # the raw loop, once per repeat (between the paths' queries)
    log.take()
    # Paths alternate query by query (in a rotating order), so a burst of load from other
    # processes hits every path alike. Per path: wall seconds and this thread's CPU seconds of
    # each repeat, and the best (least loaded) wall time of each query over the repeats.
    seconds: dict[str, list[float]] = {label: [0.0] * repeats for label, *_ in PATHS}
    cpu: dict[str, list[float]] = {label: [0.0] * repeats for label, *_ in PATHS}
    best: dict[str, list[float]] = {label: [float("inf")] * len(texts) for label, *_ in PATHS}
    results: dict[str, list] = {label: [None] * len(texts) for label, *_ in PATHS}
    ids: dict[str, list] = {label: [None] * len(texts) for label, *_ in PATHS}
    spec = decoding.SpeculationStats()  # the new path's, over every repeat
    for r in range(repeats):
        loops.append(transformers_loop(model, prompt, budget))
        bandwidths.append(bandwidth())
        for q, text in enumerate(texts):
            shift = (r + q) % len(PATHS)
            for label, backend, lean, checked_head, drafts in PATHS[shift:] + PATHS[:shift]:
                emb.decode_backend = backend
                emb.speculative_tokens = drafts
                _set_levers(model, lean, checked_head)
                wall, thread = time.perf_counter(), time.thread_time()
                res = emb.encode_queries([text], max_reasoning_tokens=budget, show_progress_bar=False)
                thread, wall = time.thread_time() - thread, time.perf_counter() - wall
                seconds[label][r] += wall
                cpu[label][r] += thread
                best[label][q] = min(best[label][q], wall)
                if drafts:
                    counted = log.speculation()
                    spec.forwards += counted.forwards
                    spec.drafted += counted.drafted
                    spec.accepted += counted.accepted
                got = log.take()
                if ids[label][q] is not None and (
                    got != ids[label][q] or res.reasoning != results[label][q].reasoning
                ):
                    raise SystemExit(f"{label}: the outputs changed between repeats")
                ids[label][q], results[label][q] = got, res
    _set_levers(model, True, True)
    emb.speculative_tokens = SPECULATE
    loop = statistics.median(loops)
    base, new = PATHS[0][0], PATHS[-1][0]
    for label in seconds:
        if ids[label] != ids[base]:
            raise SystemExit(f"{dtype}: {label!r} generated other tokens than the baseline: {ids[label]}")
    tokens = sum(len(x) for row in ids[new] for x in row)
    rows = [[f"{dtype}: transformers loop (DynamicCache)", loop]]
    for label, times in seconds.items():
        rows.append([f"{dtype}: {label}", statistics.median(times) / tokens])
    ratios = [b / n for b, n in zip(seconds[base], seconds[new], strict=True)]
    cpu_ratios = [b / n for b, n in zip(cpu[base], cpu[new], strict=True)]
    stage_ratios = {label: sum(best[base]) / sum(best[label]) for label in best}
    same, cosine = compare(results[base], results[new])
    return {
        "rows": rows,
        "bytes": step_bytes(model),
        "new_bytes": new_bytes,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "best_ratio": stage_ratios[new],
        "stage_ratios": stage_ratios,
        "best_new_s": sum(best[new]) / tokens,
        "ratio_vs_loop": loop / (statistics.median(seconds[new]) / tokens),
        "new_s": statistics.median(seconds[new]) / tokens,
        "same": same,
        "cosine": cosine,
        "tokens": tokens,
        "example": results[new][0].reasoning[0],
        "speculation": spec,
        "n": len(texts),
    }


def part_batching(model_name: str, texts: list[str], budget: int, interval: float, batch_size: int) -> dict:
    emb = ReasoningEmbeddings.from_pretrained(model_name, device="cpu", dtype="float32")
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
    parser.add_argument("--model", default=MODEL, help=f"model name or folder (default {MODEL})")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated (default both)")
    parser.add_argument("--n-single", type=int, default=4, help="queries decoded one at a time per dtype")
    parser.add_argument("--n-batch", type=int, default=16, help="staggered queries for continuous batching")
    parser.add_argument("--max-reasoning-tokens", type=int, default=48, help="budget per query")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between arrivals")
    parser.add_argument("--max-batch-size", type=int, default=32, help="QueryEngine max_batch_size")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per batch-1 path")
    parser.add_argument("--skip-batching", action="store_true", help="only part 1")
    args = parser.parse_args()
    torch.set_num_threads(1)

    bandwidths = [bandwidth()]
    texts, source = queries(max(args.n_single, args.n_batch))
    print(f"machine: {machine_line()}")
    print(f"memory bandwidth (sum over a 1 GiB float32 tensor): {bandwidths[0] / 1e9:.1f} GB/s at the start")
    budget = args.max_reasoning_tokens
    print(f"model: {args.model}; queries from {source}; budget {budget}; greedy; batch 1\n")

    log = TokenLog()
    singles = {}
    for dtype in args.dtypes.split(","):
        singles[dtype] = part_single(
            args.model,
            dtype,
            texts[: args.n_single],
            args.max_reasoning_tokens,
            bandwidths,
            args.repeats,
            log,
        )
    bandwidths.append(bandwidth())
    # the floors: at the best bandwidth the machine gave in this run (others' load only lowers it)
    best_bw = max(bandwidths)
    for res in singles.values():
        res["floor_s"], res["new_floor_s"] = res["bytes"] / best_bw, res["new_bytes"] / best_bw
    rows = [
        [label, s * 1e3, 1 / s, res["floor_s"] * 1e3, s / res["floor_s"]]
        for res in singles.values()
        for label, s in res["rows"]
    ]
    print(f"median of {args.repeats} alternating repeats per path; ms/token end to end (prefill included)")
    print_table(["path (batch 1)", "ms/token", "tokens/s", "floor ms", "x floor"], rows)
    for dtype, res in singles.items():
        ratios, cpu_ratios = res["ratios"], res["cpu_ratios"]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(
            f"\n{dtype}: new vs baseline (encode_queries, transformers cache), tokens/s: "
            f"{statistics.median(ratios):.2f}x median of {len(ratios)} repeats (range {spread}); "
            f"best-of-{len(ratios)} per query {res['best_ratio']:.2f}x; "
            f"CPU time {statistics.median(cpu_ratios):.2f}x ({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
        )
        stages = ", ".join(f"{label.split(': ', 1)[-1]} {r:.2f}x" for label, r in res["stage_ratios"].items())
        print(f"  best-of-{len(ratios)} by stage: {stages}")
        x_floor, best_x_floor = res["new_s"] / res["floor_s"], res["best_new_s"] / res["floor_s"]
        print(
            f"  vs the raw transformers loop {res['ratio_vs_loop']:.2f}x; new path {x_floor:.2f}x "
            f"the floor (best-of: {best_x_floor:.2f}x)"
        )
        print(
            f"  floor {res['floor_s'] * 1e3:.1f} ms/step = {res['bytes'] / 1e6:.0f} MB of weights / the best "
            f"bandwidth (the new path reads {res['new_bytes'] / 1e6:.0f} MB: "
            f"{res['new_floor_s'] * 1e3:.1f} ms); "
            f"same tokens on every path and repeat ({res['tokens']} tokens), same reasoning "
            f"{res['same']}/{res['n']}, min cosine {res['cosine']:.6f}"
        )
    print(
        f"memory bandwidth over part 1: best {max(bandwidths) / 1e9:.1f}, median "
        f"{statistics.median(bandwidths) / 1e9:.1f}, lowest {min(bandwidths) / 1e9:.1f} GB/s "
        f"({len(bandwidths)} measurements, one per repeat; the floors use the best)"
    )
    for dtype, res in singles.items():
        spec = res["speculation"]
        print(
            f"{dtype}: prompt-lookup speculation ({SPECULATE} tokens drafted at most): acceptance "
            f"{spec.acceptance:.2f} ({spec.accepted}/{spec.drafted} drafted tokens kept), "
            f"{spec.tokens_per_forward:.2f} tokens per forward ({spec.forwards} forwards)"
        )
    print(f"example reasoning: {next(iter(singles.values()))['example']!r}")

    if not args.skip_batching:
        res = part_batching(
            args.model, texts[: args.n_batch], args.max_reasoning_tokens, args.interval, args.max_batch_size
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
