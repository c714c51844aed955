"""Draw the site's plots from the results files already in the repository.

    .venv/bin/python docs/plots/make_plots.py            # writes docs/plots/*.svg
    .venv/bin/python docs/plots/make_plots.py --out DIR  # somewhere else (the tests do)

Every number comes from a markdown table that a recorded run wrote into the repository
(``benchmarks/README.md``, ``docs/model-card.md``, ``docs/training-results-*.md``); the script
reads those tables (and ``benchmarks/results/store_scale.json``, the results file of
``benchmarks/bench_store_scale.py``), so a plot can only show what was measured, and
regenerating after a new run updates it. Needs matplotlib (``pip install -e ".[docs]"``). The
SVG files are deterministic (no date, fixed ids), so an unchanged table gives an unchanged file.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python docs/plots/make_plots.py"

plt.rcParams.update(
    {
        "svg.hashsalt": "search-r3",
        "svg.fonttype": "none",  # text stays text: smaller files, the page's font
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
BLUE, GREY, ORANGE = "#3f51b5", "#9e9e9e", "#ef6c00"


class TableNotFound(LookupError):
    pass


def read_table(path: str, first_header: str, after: str | None = None) -> list[dict[str, str]]:
    """Rows of the first markdown table in ``path`` (after the line containing ``after``) whose
    first header cell starts with ``first_header``; cells keyed by header, markup removed."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    start = 0
    if after is not None:
        start = next((i for i, line in enumerate(lines) if after in line), None)
        if start is None:
            raise TableNotFound(f"{path}: no line containing {after!r}")
    for i in range(start, len(lines) - 1):
        cells = _cells(lines[i])
        if (
            cells
            and cells[0].startswith(first_header)
            and set(lines[i + 1].replace("|", "").strip()) <= set("-: ")
        ):
            rows = []
            for line in lines[i + 2 :]:
                if not line.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(line), strict=False)))
            return rows
    raise TableNotFound(f"{path}: no table whose first column is {first_header!r}")


def _cells(line: str) -> list[str]:
    if not line.startswith("|"):
        return []
    return [re.sub(r"\*\*|`", "", c).strip() for c in line.strip().strip("|").split("|")]


def number(text: str) -> float:
    """The first number in a cell ("**9.88%** (8.03% ...)" -> 9.88; "−0.055" -> -0.055)."""
    match = re.search(r"[-−]?\d+(?:[.,]\d+)*", text.replace(",", ""))
    if match is None:
        raise ValueError(f"no number in {text!r}")
    return float(match.group(0).replace("−", "-"))


def _save(fig: plt.Figure, out: Path, name: str) -> Path:
    path = out / name
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path


# -- the plots ----------------------------------------------------------------------------------
def model_card_systems(out: Path) -> Path:
    """nDCG@10 and query time of every system in the model card's Cranfield table."""
    rows = read_table("docs/model-card.md", "system", after="## Results on Cranfield")
    names = [r["system"].replace("search-r3-smollm2-135m", "shipped model") for r in rows]
    ndcg = [number(r["nDCG@10"]) for r in rows]
    seconds = [number(r["query s"]) for r in rows]
    colors = [
        BLUE if "shipped" in n else GREY if "BM25" in n or "sentence" in n else "#7986cb" for n in names
    ]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 4.2), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    y = range(len(names))[::-1]
    left.barh(list(y), ndcg, color=colors)
    left.set_yticks(list(y), names)
    left.set_xlabel("nDCG@10 on Cranfield's test split (higher is better)")
    for yi, v in zip(y, ndcg, strict=True):
        left.text(v + 0.005, yi, f"{v:.3f}", va="center", fontsize=8)
    right.barh(list(y), seconds, color=colors)
    right.set_xlabel("seconds for all test queries (lower is better)")
    for yi, v in zip(y, seconds, strict=True):
        right.text(v + 0.5, yi, f"{v:g}", va="center", fontsize=8)
    return _save(fig, out, "model-card-systems.svg")


def model_v2_ablation(out: Path) -> Path:
    """Recipe v2 against its ablation: nDCG@10 with reasoning on and off, dense and hybrid, with the
    baselines of the same run (the model card's "Recipe v2" table)."""
    rows = read_table("docs/model-card.md", "system", after="## Recipe v2")
    score = {r["system"]: number(r["nDCG@10"]) for r in rows}
    models = [("v2 (expansion reasoning)", "v2"), ("ablation (query-only reasoning)", "ablation")]
    settings = [
        "reasoning · dense",
        "no reasoning · dense",
        "reasoning · hybrid DBSF",
        "no reasoning · hybrid DBSF",
    ]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.38
    for m, ((name, prefix), color) in enumerate(zip(models, (ORANGE, BLUE), strict=True)):
        values = [
            next(v for k, v in score.items() if k.startswith(prefix) and k.endswith(f": {s}"))
            for s in settings
        ]
        xs = [i + (m - 0.5) * width for i in range(len(settings))]
        ax.bar(xs, values, width, label=name, color=color)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v + 0.005, f"{v:.3f}", ha="center", fontsize=8)
    for name, style in (("BM25", "--"), ("sentence-transformers: all-MiniLM-L6-v2", ":")):
        ax.axhline(
            score[name], color=GREY, linestyle=style, label=f"{name.split(': ')[-1]} ({score[name]:.3f})"
        )
    ax.set_xticks(range(len(settings)), settings)
    ax.set_ylim(0.3, 0.62)
    ax.set_ylabel("nDCG@10, Cranfield test split")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out, "model-v2-ablation.svg")


def document_throughput(out: Path) -> Path:
    """Document encoding tokens/s by method (benchmarks/README.md, "Document encoding")."""
    rows = read_table("benchmarks/README.md", "method", after="## Document encoding")
    names = [re.sub(r"\s*\(.*\)", "", r["method"]) for r in rows]
    tokens = [number(r["tokens/s"]) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    y = range(len(names))[::-1]
    ax.barh(list(y), tokens, color=[BLUE if n.startswith("search-r3") else GREY for n in names])
    ax.set_yticks(list(y), names)
    ax.set_xlabel("prompt tokens/s, 32 Cranfield documents, 2 CPU threads (higher is better)")
    for yi, v in zip(y, tokens, strict=True):
        ax.text(v + 15, yi, f"{v:g}", va="center", fontsize=8)
    return _save(fig, out, "document-throughput.svg")


def reasoning_batching(out: Path) -> Path:
    """Queries/s of batched vs one-at-a-time reasoning (benchmarks/README.md, "Reasoning queries")."""
    rows = read_table("benchmarks/README.md", "method", after="## Reasoning queries")
    names = [r["method"] for r in rows]
    qps = [number(r["queries/s"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 2.4))
    y = range(len(names))[::-1]
    ax.barh(list(y), qps, color=[BLUE, GREY][: len(names)])
    ax.set_yticks(list(y), names)
    ax.set_xlabel("reasoning queries per second (48 tokens each, 16 queries)")
    for yi, v in zip(y, qps, strict=True):
        ax.text(v + 0.03, yi, f"{v:g}", va="center", fontsize=8)
    return _save(fig, out, "reasoning-batching.svg")


def server_load(out: Path) -> Path:
    """Queries/s one at a time and batched, one row per run (benchmarks/README.md, "Server under load")."""
    rows = read_table("benchmarks/README.md", "engine", after="## Server under load")
    names = [
        f"{r['engine']}, {r['server threads']} thread{'' if r['server threads'] == '1' else 's'}"
        for r in rows
    ]
    one = [number(r["one at a time, queries/s"]) for r in rows]
    batched = [number(r["batched, queries/s"]) for r in rows]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.3 * len(rows)))
    y = list(range(len(names)))[::-1]
    height = 0.38
    ax.barh([v + height / 2 for v in y], batched, height, color=BLUE, label="16 clients, continuous batching")
    ax.barh([v - height / 2 for v in y], one, height, color=GREY, label="one request at a time")
    ax.set_yticks(y, [textwrap.fill(n, 44) for n in names], fontsize=8)
    ax.set_xlabel("queries per second, reasoning on, SmolLM2-135M float32, 2 cores (higher is better)")
    for yi, b, o, r in zip(y, batched, one, rows, strict=True):
        ax.text(b + 0.1, yi + height / 2, f"{b:g} ({r['ratio']})", va="center", fontsize=8)
        ax.text(o + 0.1, yi - height / 2, f"{o:g}", va="center", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, max(batched) * 1.25)
    return _save(fig, out, "server-load.svg")


def store_latency(out: Path) -> Path:
    """Search latency against collection size, local mode (benchmarks/README.md, "The store")."""
    rows = read_table("benchmarks/README.md", "points", after="## The store")
    points = [int(number(r["points"])) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3))
    for key, label, color, style in [
        ("store p50 ms", "store p50", BLUE, "o-"),
        ("store p95 ms", "store p95", "#7986cb", "s--"),
        ("numpy brute force p50 ms", "numpy brute force p50", GREY, "^:"),
    ]:
        ax.plot(points, [number(r[key]) for r in rows], style, color=color, label=label)
    ax.set_xscale("log")
    ax.set_xticks(points, [f"{p:,}" for p in points])
    ax.set_xlabel("points in the collection (dim 576)")
    ax.set_ylabel("ms per search, top 10")
    ax.legend(frameon=False)
    return _save(fig, out, "store-latency.svg")


def sft_loss(out: Path) -> Path:
    """InfoNCE loss and similarity margin per 10-step window (docs/training-results-sft.md)."""
    rows = read_table("docs/training-results-sft.md", "steps")
    steps = [r["steps"].replace("–", "-") for r in rows]
    loss = [number(r["InfoNCE"]) for r in rows]
    margin = [number(r["cos(q, d⁺) − cos(q, d⁻)"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(steps, loss, "o-", color=BLUE, label="InfoNCE loss")
    ax.set_xlabel("training steps (mean over each window)")
    ax.set_ylabel("InfoNCE loss", color=BLUE)
    twin = ax.twinx()
    twin.plot(steps, margin, "s--", color=ORANGE, label="cos(q, d+) - cos(q, d-)")
    twin.set_ylabel("similarity margin", color=ORANGE)
    twin.grid(False)
    twin.spines["top"].set_visible(False)
    return _save(fig, out, "sft-loss.svg")


def rl_reward(out: Path) -> Path:
    """Mean reward (± std) and documents re-encoded per RL step (docs/training-results-rl.md)."""
    rows = read_table("docs/training-results-rl.md", "step", after="## A CPU RL run")
    steps = [int(number(r["step"])) for r in rows]
    reward = [number(r["reward"]) for r in rows]
    std = [number(r["reward std"]) for r in rows]
    encoded = [number(r["documents re-encoded"]) for r in rows]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(steps, reward, "o-", color=BLUE, label="mean reward of the step's rollouts")
    top.fill_between(
        steps,
        [r - s for r, s in zip(reward, std, strict=True)],
        [r + s for r, s in zip(reward, std, strict=True)],
        color=BLUE,
        alpha=0.15,
        label="± std",
    )
    top.set_ylabel("reward")
    top.legend(frameon=False, fontsize=8, loc="lower right")
    bottom.bar(steps, encoded, color=[GREY] + [BLUE] * (len(steps) - 1))
    bottom.set_ylabel("documents re-encoded")
    bottom.set_xlabel("RL step (step 1: the initial encoding of the 250-document pool)")
    bottom.set_xticks(steps)
    return _save(fig, out, "rl-reward.svg")


def reasoning_budget(out: Path) -> Path:
    """nDCG@10 and queries/s against the reasoning budget (docs/benchmarks.md, budget sweep)."""
    rows = read_table("docs/benchmarks.md", "system", after="### Reasoning budget sweep")
    swept = [r for r in rows if r["budget"] != "-"]
    budgets = [int(number(r["budget"])) for r in swept]
    ndcg = [number(r["nDCG@10"]) for r in swept]
    qps = [number(r["queries/s"]) for r in swept]
    labels = [f"{b}\n(off)" if b == 0 else str(b) for b in budgets]
    x = list(range(len(budgets)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(x, ndcg, "o-", color=BLUE, label="search-r3-smollm2-135m")
    for r in rows:
        if r["budget"] == "-" and "BM25" in r["system"]:
            left.axhline(number(r["nDCG@10"]), color=GREY, ls="--", label="BM25")
    for xi, v in zip(x, ndcg, strict=True):
        left.annotate(f"{v:.3f}", (xi, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    left.set_ylim(0, max(ndcg + [0.55]) * 1.1)
    left.set_ylabel("nDCG@10 (higher is better)")
    left.legend(frameon=False, fontsize=8, loc="lower right")
    right.bar(x, qps, color=[GREY] + [BLUE] * (len(x) - 1))
    for xi, v in zip(x, qps, strict=True):
        right.text(xi, v, f"{v:g}", ha="center", va="bottom", fontsize=8)
    right.set_ylabel("queries per second (higher is better)")
    for ax in (left, right):
        ax.set_xticks(x, labels)
        ax.set_xlabel("reasoning budget (most generated tokens)")
    return _save(fig, out, "reasoning-budget.svg")


def rl_env_drift(out: Path) -> Path:
    """Re-encoded share, drift and vector age per step of the RL environment (training-results-rl.md)."""
    # The table sits in a collapsible note, indented: read the lines after the heading, dedented.
    text = (ROOT / "docs/training-results-rl.md").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.split("### Per step: re-encoding", 1)[1].splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("| step |"))
    header = _cells(lines[start])
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, _cells(line), strict=False)))
    steps = [int(number(r["step"])) for r in rows]
    share = [number(r["share of corpus"]) for r in rows]
    drift = [number(r["drift from step 0"]) for r in rows]
    probe = [
        (step, number(r["probe drift"]))
        for step, r in zip(steps, rows, strict=True)
        if r["probe drift"] != "-"
    ]
    age = [number(r["mean staleness (steps)"]) for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(7, 6.4), sharex=True)
    top.bar(steps, share, color=BLUE)
    top.set_ylabel("% of corpus\nre-encoded")
    middle.plot(steps, drift, "-", color=BLUE, label="drift from step 0 (all documents)")
    if probe:
        middle.plot(*zip(*probe, strict=True), "o", color=ORANGE, label="probe drift (its check)")
    middle.axhline(0.15, color=GREY, ls="--", label="full-refresh threshold 0.15")
    middle.set_ylabel("1 - mean cosine")
    middle.legend(frameon=False, fontsize=8, loc="upper left")
    bottom.plot(steps, age, "-", color=BLUE)
    bottom.set_ylabel("mean age of the\ncached vectors (steps)")
    bottom.set_xlabel("environment step (policy changes every step)")
    return _save(fig, out, "rl-env-drift.svg")


# -- the store at scale (benchmarks/results/store_scale.json, written by bench_store_scale.py) ---
STORE_SCALE_RESULTS = "benchmarks/results/store_scale.json"


def store_scale(out: Path) -> Path:
    """Write throughput and query p50 against collection size: qdrant-edge vs local mode.

    Reads the JSON results of ``benchmarks/bench_store_scale.py``: for the engine, the rows of its
    first HNSW config (the recommended one) and the write-only sizes; for local mode, the sizes
    each baseline passed before its time limit.
    """
    import json

    results = json.loads((ROOT / STORE_SCALE_RESULTS).read_text(encoding="utf-8"))
    first = results["edge"][0]["config"]
    edge = sorted((r for r in results["edge"] if r["config"] == first), key=lambda r: r["points"])
    indexed = [r for r in edge if r["indexed"]]
    efs = results["args"]["hnsw_ef"]
    search = 512 if 512 in efs else efs[-1]  # 512: the recommended default
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(
        [r["points"] for r in edge],
        [r["write_points_per_s"] for r in edge],
        "o-",
        color=BLUE,
        label="qdrant-edge (WAL + flush)",
    )
    styles = {"local mode, on disk": ("s--", GREY), "local mode, in memory": ("^:", ORANGE)}
    for loc in results.get("local", []):
        style, color = styles.get(loc["engine"], ("x:", GREY))
        curve = list({c["points"]: c for c in loc["curve"]}.values())  # one point per size
        left.plot(
            [c["points"] for c in curve],
            [c["write_points_per_s"] for c in curve],
            style,
            color=color,
            label=loc["engine"],
        )
        right.plot(
            [c["points"] for c in curve],
            [c["p50_ms"] for c in curve],
            style,
            color=color,
            label=loc["engine"],
        )
    right.plot(
        [r["points"] for r in indexed],
        [
            next(s["p50_ms"] for s in r["search"] if s["search"].startswith(f"hnsw_ef={search}"))
            for r in indexed
        ],
        "o-",
        color=BLUE,
        label=f"qdrant-edge, HNSW (hnsw_ef={search})",
    )
    scanned = [r for r in edge if "unindexed_p50_ms" in r]
    right.plot(
        [r["points"] for r in scanned],
        [r["unindexed_p50_ms"] for r in scanned],
        "o--",
        color="#7986cb",
        label="qdrant-edge, before the index (full scan)",
    )
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("points in the collection (dim 576)")
    left.set_ylabel("points written per second")
    right.set_ylabel("ms per search, top 10 (p50)")
    left.set_title(f"writes ({first})", fontsize=10)
    right.set_title("query latency", fontsize=10)
    left.legend(frameon=False, fontsize=8)
    right.legend(frameon=False, fontsize=8)
    return _save(fig, out, "store-scale.svg")


def _transpose(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """A table with one row per measure and one column per step -> one dict per step."""
    header = [k for k in rows[0] if k != "step"]
    first_key = "step"
    return [{first_key: col, **{r[first_key]: r[col] for r in rows}} for col in header]


PLOTS: dict[str, Callable[[Path], Path]] = {
    "model-card-systems.svg": model_card_systems,
    "model-v2-ablation.svg": model_v2_ablation,
    "document-throughput.svg": document_throughput,
    "reasoning-batching.svg": reasoning_batching,
    "store-latency.svg": store_latency,
    "sft-loss.svg": sft_loss,
    "rl-reward.svg": rl_reward,
    "reasoning-budget.svg": reasoning_budget,
    "rl-env-drift.svg": rl_env_drift,
    "store-scale.svg": store_scale,
    "server-load.svg": server_load,
}


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help="folder for the SVG files (default: docs/plots)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [make(args.out) for make in PLOTS.values()]
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
