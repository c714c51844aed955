"""The stage-2 retrieval environment: local refresh against re-encoding the corpus every step.

    .venv/bin/python benchmarks/bench_rl_env.py                   # 5,400 documents, 50 steps
    .venv/bin/python benchmarks/bench_rl_env.py --docs 8000 --steps 80 --json out.json

Corpus: Cranfield's abstracts (``../shared/data/cranfield``) plus paragraphs of the docstrings of
Python's own standard library (offline real text, as distractors) up to ``--docs``. Queries:
Cranfield's train-split queries with their judgements (gain = 5 - code).

Policy: a tiny Llama (hidden 64, 2 layers) whose token embeddings are SmolLM2-135M's projected to
64 dimensions (so its vectors carry lexical meaning; built once from the offline SmolLM2 weights),
turned into a search-r3 model with ``init_model``. Every step it changes: one AdamW step of
InfoNCE on (query, relevant document) pairs, as a stand-in for a policy update.

Each step, ``--queries`` queries x ``--group`` rollouts are embedded (the query text plus words
sampled from the corpus, so rollouts of one query differ as reasoning would make them) and
scored with DCG_scaled@10 in three environments side by side, all driven by the same policy:

* ``local``: ``RetrievalEnvironment`` (top-K + relevant + graph neighbours + staleness budget,
  full refresh on drift or every N steps);
* ``naive``: ``NaiveEnvironment``, the whole corpus re-encoded each step: the reference rewards;
* ``stale``: the vectors of step 0, never refreshed (what skipping the refresh would give).

Reported: documents re-encoded per step (fraction of the corpus), Spearman and mean absolute
difference of local (and stale) rewards against the fully re-encoded ones, the same for the
group-normalised advantages GRPO actually uses, and the wall time of an environment step.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"


# -- corpus ------------------------------------------------------------------------------------------
def docstring_paragraphs(limit: int, min_chars: int = 200, max_chars: int = 900) -> list[str]:
    """Docstring paragraphs of installed Python code: the standard library first, then site-packages.

    Sorted by file path and deduplicated, so the same installation gives the same corpus.
    """
    paths = sysconfig.get_paths()
    stdlib = [p for p in sorted(Path(paths["stdlib"]).rglob("*.py")) if "site-packages" not in p.parts]
    seen: set[str] = set()
    out: list[str] = []
    for path in stdlib + sorted(Path(paths["purelib"]).rglob("*.py")):
        if any(part in ("test", "tests", "idlelib", "lib2to3") for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            for para in doc.split("\n\n"):
                text = " ".join(para.split())
                letters = sum(c.isalpha() for c in text)
                if min_chars <= len(text) <= max_chars and letters > 0.7 * len(text) and text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) >= limit:
                        return out
    return out


def load_corpus(total: int):
    from search_r3.collections import load_cranfield, split_queries
    from search_r3_train.rl.data import RLData

    if not (CRANFIELD / "cran.all.1400").is_file():
        sys.exit(f"Cranfield not found at {CRANFIELD}; this benchmark needs ../shared/data/cranfield.")
    collection = split_queries(load_cranfield(CRANFIELD), seed=13)["train"]
    corpus = {d: collection.doc_text(d) for d in collection.doc_ids()}
    extra = docstring_paragraphs(max(0, total - len(corpus)))
    corpus.update({f"py-{i}": text for i, text in enumerate(extra)})
    data = RLData.from_parts(corpus, collection.queries, collection.qrels, source="cranfield+docstrings")
    return data, len(extra)


# -- policy --------------------------------------------------------------------------------------------
def tiny_policy(workdir: Path, hidden: int = 64, seed: int = 0) -> Path:
    """A tiny Llama with SmolLM2's token embeddings projected to ``hidden`` dims, as a search-r3 folder."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from search_r3 import init_model
    from search_r3.offline_models import offline_model_path

    base = Path(offline_model_path("smollm2-135m-instruct"))
    tokenizer = AutoTokenizer.from_pretrained(base)
    with safe_open(str(next(base.glob("*.safetensors"))), "pt") as f:
        name = next(k for k in f.keys() if k.endswith("embed_tokens.weight"))  # noqa: SIM118
        table = f.get_tensor(name).float()
    centred = table - table.mean(0)
    _, _, v = torch.pca_lowrank(centred, q=hidden, center=False, niter=4)
    projected = centred @ v  # (vocab, hidden)
    projected = projected / projected.std() * 0.5
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight[: projected.shape[0]] = projected
    plain = workdir / "tiny-plain"
    model.save_pretrained(plain, safe_serialization=True)
    tokenizer.save_pretrained(plain)
    return init_model(plain, workdir / "tiny-r3")


# -- measurement ------------------------------------------------------------------------------------------
def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def group_advantages(rewards: np.ndarray, group: int) -> np.ndarray:
    r = rewards.reshape(-1, group)
    return ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-4)).reshape(-1)


def infonce_step(model, encoder, prompts, data, rng, optimizer, batch_size=16, negatives=48) -> float:
    """One AdamW step of InfoNCE: each query against its most relevant document, the other queries'
    documents and ``negatives`` random corpus documents. The random negatives keep the loss (and so
    the policy's movement) from vanishing once the training pairs are learnt."""
    from search_r3.pooling import backbone_of, embed_forward, pad_batch

    picked = rng.sample(range(len(data.queries)), batch_size)
    queries = [prompts.query_ids(data.queries[i]) for i in picked]
    judged = [data.qrels[data.query_ids[i]] for i in picked]
    docs = [encoder.document_ids(max(j, key=j.get)) for j in judged]
    docs += [encoder.document_ids(i) for i in rng.sample(range(data.num_docs), negatives)]
    ids, mask = pad_batch(queries + docs, encoder.pad_id)
    vectors = embed_forward(backbone_of(model), ids, mask, prompts.embed_id)
    q, d = vectors[:batch_size], vectors[batch_size:]
    loss = F.cross_entropy(q @ d.T / 0.05, torch.arange(batch_size))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--docs", type=int, default=5400, help="corpus size (Cranfield + docstring paragraphs)"
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--queries", type=int, default=4, help="queries per step")
    parser.add_argument("--group", type=int, default=4, help="rollouts per query (G)")
    parser.add_argument("--warmup-steps", type=int, default=100, help="InfoNCE steps before step 0 (untimed)")
    parser.add_argument("--warmup-lr", type=float, default=1e-3)
    parser.add_argument("--lr", type=float, default=3e-4, help="policy learning rate during the steps")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per document text")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--graph-k", type=int, default=8)
    parser.add_argument("--neighbours", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.005, help="staleness budget (fraction or rows)")
    parser.add_argument("--full-every", type=int, default=0)
    parser.add_argument("--drift", type=float, default=0.15)
    parser.add_argument("--drift-every", type=int, default=10)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 by default: on a shared, oversubscribed CPU more threads are slower)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from search_r3 import ReasoningEmbeddings
    from search_r3_train.rl.environment import EnvironmentConfig, NaiveEnvironment, RetrievalEnvironment
    from search_r3_train.rl.policy import PolicyEncoder
    from search_r3_train.rl.rewards import make_reward

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    data, n_extra = load_corpus(args.docs)
    print(f"corpus: {data.num_docs} documents ({data.num_docs - n_extra} Cranfield, {n_extra} docstring "
          f"paragraphs); {len(data.queries)} train queries", flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny_policy(Path(tmp))
        loaded = ReasoningEmbeddings.from_pretrained(folder, device="cpu", max_length=args.max_length)
    model, prompts = loaded.model, loaded.prompts
    model.train()
    encoder = PolicyEncoder(model, prompts, data.documents, loaded.pad_id, batch_size=64)
    start = time.perf_counter()
    for i in range(data.num_docs):  # tokenise once, outside the timed steps
        encoder.document_ids(i)
    print(f"tokenised the corpus in {time.perf_counter() - start:.1f}s", flush=True)
    start = time.perf_counter()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.warmup_lr)
    losses = [infonce_step(model, encoder, prompts, data, rng, optimizer) for _ in range(args.warmup_steps)]
    if losses:
        print(f"warm-up: {len(losses)} InfoNCE steps in {time.perf_counter() - start:.0f}s, loss "
              f"{np.mean(losses[:20]):.2f} -> {np.mean(losses[-20:]):.2f}", flush=True)  # fmt: skip
    for group in optimizer.param_groups:
        group["lr"] = args.lr

    config = EnvironmentConfig(
        top_k=args.top_k, graph_k=args.graph_k, refresh_neighbours=args.neighbours,
        staleness_budget=args.budget, full_refresh_every=args.full_every, drift_threshold=args.drift,
        drift_check_every=args.drift_every, probe_size=32, seed=args.seed,
    )  # fmt: skip
    local = RetrievalEnvironment(encoder.encode_documents, data.num_docs, config)
    naive = NaiveEnvironment(encoder.encode_documents, data.num_docs, config)
    reward = make_reward("dcg_scaled", k=10)
    words = {w for d in data.documents[: data.num_docs - n_extra] for w in d.lower().split()}
    vocabulary = sorted(w for w in words if w.isalpha() and len(w) > 3)
    dim = loaded.embedding_dimension

    # step 0: both environments encode the corpus with the starting policy
    start = time.perf_counter()
    local.step(torch.zeros(0, dim), [])
    init_seconds = time.perf_counter() - start
    naive.step(torch.zeros(0, dim), [])
    start_vectors = naive.vectors.clone()  # the stale cache: never refreshed

    rows, times_local, times_naive, update_seconds, per_step_rho = [], [], [], [], []
    pooled: dict[str, list[float]] = {"local": [], "full": [], "stale": []}
    advantages: dict[str, list[float]] = {"local": [], "full": [], "stale": []}
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        loss = infonce_step(model, encoder, prompts, data, rng, optimizer)
        update_seconds.append(time.perf_counter() - start)

        # rollouts: G variants of each sampled query (query + sampled terms), current policy
        texts, relevant = [], []
        for i in rng.sample(range(len(data.queries)), args.queries):
            for _ in range(args.group):
                texts.append(f"{data.queries[i]} Key terms: {' '.join(rng.sample(vocabulary, 6))}")
                relevant.append(data.qrels[data.query_ids[i]])
        query_vectors = encoder.embed_ids([prompts.query_ids(t) for t in texts])
        judged = [list(r) for r in relevant]

        start = time.perf_counter()
        stats = local.step(query_vectors, judged)
        scores = local.scores(query_vectors)
        r_local = [reward(scores[j], relevant[j]) for j in range(len(texts))]
        times_local.append(time.perf_counter() - start)

        start = time.perf_counter()
        naive.step(query_vectors, judged)
        scores = naive.scores(query_vectors)
        r_full = [reward(scores[j], relevant[j]) for j in range(len(texts))]
        times_naive.append(time.perf_counter() - start)

        scores = F.normalize(query_vectors, dim=-1) @ start_vectors.T
        r_stale = [reward(scores[j], relevant[j]) for j in range(len(texts))]
        for name, values in (("local", r_local), ("full", r_full), ("stale", r_stale)):
            pooled[name].extend(values)
            advantages[name].extend(group_advantages(np.array(values), args.group).tolist())
        per_step_rho.append(spearman(r_local, r_full))
        drift = float(1 - (naive.vectors * start_vectors).sum(1).mean())
        rows.append(
            {**stats.as_dict(), "drift_to_start": drift, "loss": loss, "reward_full": float(np.mean(r_full))}
        )
        if step % 10 == 0 or step == 1:
            full = f" FULL ({stats.reason})" if stats.full_refresh else ""
            print(
                f"step {step:3d}: re-encoded {stats.rows_encoded:5d} rows "
                f"({stats.encoded_fraction:.1%}){full}, drift from step 0 {drift:.3f}, reward full "
                f"{np.mean(r_full):.3f} local {np.mean(r_local):.3f} stale {np.mean(r_stale):.3f}, "
                f"env step {times_local[-1]:.2f}s vs naive {times_naive[-1]:.2f}s",
                flush=True,
            )

    report(args, data.num_docs, rows, pooled, advantages, per_step_rho, times_local, times_naive,
           update_seconds, init_seconds)  # fmt: skip


def report(
    args, n, rows, pooled, advantages, per_step_rho, times_local, times_naive, update_seconds, init_seconds
):
    def mad(a, b):
        return float(np.mean(np.abs(np.subtract(a, b))))

    encoded = [r["rows_encoded"] for r in rows]
    local_only = [r["rows_encoded"] for r in rows if not r["full_refresh"]]
    full_steps = [r["step"] for r in rows if r["full_refresh"]]
    figures = {
        "docs": n,
        "steps": args.steps,
        "rollouts_per_step": args.queries * args.group,
        "encoded_fraction_mean": float(np.mean(encoded)) / n,
        "encoded_fraction_local_steps_mean": float(np.mean(local_only)) / n if local_only else None,
        "encoded_fraction_local_steps_max": float(np.max(local_only)) / n if local_only else None,
        "full_refresh_steps": full_steps,
        "spearman_local": spearman(pooled["local"], pooled["full"]),
        "spearman_stale": spearman(pooled["stale"], pooled["full"]),
        "spearman_local_per_step_mean": float(np.nanmean(per_step_rho)),
        "mad_local": mad(pooled["local"], pooled["full"]),
        "mad_stale": mad(pooled["stale"], pooled["full"]),
        "advantage_spearman_local": spearman(advantages["local"], advantages["full"]),
        "advantage_spearman_stale": spearman(advantages["stale"], advantages["full"]),
        "advantage_mad_local": mad(advantages["local"], advantages["full"]),
        "advantage_mad_stale": mad(advantages["stale"], advantages["full"]),
        "drift_to_start_final": rows[-1]["drift_to_start"],
        "mean_reward_full": float(np.mean(pooled["full"])),
        "seconds_env_step_local": float(np.mean(times_local)),
        "seconds_env_step_naive": float(np.mean(times_naive)),
        "seconds_initial_encode": init_seconds,
        "seconds_policy_update": float(np.mean(update_seconds)),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    f = figures
    local_steps = ""
    if local_only:
        local_steps = f" (steps without a full refresh: mean {f['encoded_fraction_local_steps_mean']:.2%}, " \
                      f"max {f['encoded_fraction_local_steps_max']:.2%})"  # fmt: skip
    lines = [
        "| measure | local refresh | naive (re-encode all) | stale cache (never refreshed) |",
        "| --- | --- | --- | --- |",
        f"| documents re-encoded per step (share of {n}) | {f['encoded_fraction_mean']:.2%} | 100% | 0% |",
        f"| full refreshes in {args.steps} steps | {len(full_steps)} | {args.steps} | 0 |",
        f"| Spearman of rewards vs. fully re-encoded | {f['spearman_local']:.4f} | 1 | "
        f"{f['spearman_stale']:.4f} |",
        f"| mean abs. reward difference | {f['mad_local']:.4f} | 0 | {f['mad_stale']:.4f} |",
        f"| Spearman of group advantages | {f['advantage_spearman_local']:.4f} | 1 | "
        f"{f['advantage_spearman_stale']:.4f} |",
        f"| mean abs. advantage difference | {f['advantage_mad_local']:.4f} | 0 | "
        f"{f['advantage_mad_stale']:.4f} |",
        f"| environment step, wall time | {f['seconds_env_step_local']:.3f} s | "
        f"{f['seconds_env_step_naive']:.3f} s | 0 |",
    ]
    print()
    print("\n".join(lines))
    speedup = f["seconds_env_step_naive"] / f["seconds_env_step_local"]
    print(
        f"\nlocal refresh re-encoded {f['encoded_fraction_mean']:.2%} of the corpus per step{local_steps}; "
        f"full refreshes at steps {full_steps}; environment step {speedup:.1f}x faster than naive."
    )
    print(
        f"policy drift from step 0 (1 - mean cosine over all documents) at the end: "
        f"{f['drift_to_start_final']:.3f}; mean reward (full) {f['mean_reward_full']:.3f}; per-step "
        f"Spearman mean {f['spearman_local_per_step_mean']:.3f}; initial encode {init_seconds:.1f}s; "
        f"policy update {f['seconds_policy_update']:.2f}s/step; torch threads {args.threads}."
    )
    if args.json:
        args.json.write_text(json.dumps({**figures, "per_step": rows}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
