"""Helpers shared by the benchmark scripts: the real model, the texts, timing and tables."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"

#: Used when ../shared/data/cranfield is absent, so the scripts run anywhere.
SAMPLE_DOCUMENTS = [
    "Paris is the capital and most populous city of France, on the river Seine.",
    "The Louvre is the world's most-visited museum and a historic landmark in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "A transformer is a deep learning architecture based on multi-head attention.",
    "The boundary layer is the thin layer of fluid next to a surface where viscosity matters.",
    "Bananas are rich in potassium and are among the most widely eaten fruits.",
    "Qdrant is a vector database for similarity search over dense embeddings.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
]
SAMPLE_QUERIES = [
    "which city hosts the Louvre?",
    "how do plants make sugar from sunlight?",
    "what is attention in neural networks?",
    "when did the Thirty Years' War end?",
    "what fruit has a lot of potassium?",
    "what is a vector database used for?",
    "what happens near a wing surface in viscous flow?",
    "what is the capital of France?",
]


def real_model_dir(name: str = "smollm2-135m-instruct") -> Path:
    """A search-r3 folder made from a real offline base model, built once into the cache."""
    from search_r3 import init_model
    from search_r3.offline_models import cache_dir, offline_model_path

    target = cache_dir() / "benchmark-models" / name
    if not (target / "config.json").is_file():
        print(f"building {target} from {name} (once)...", flush=True)
        init_model(offline_model_path(name), target)
    return target


def _cranfield():
    """The Cranfield collection through the project's own reader (skipping empty documents)."""
    from search_r3.collections import load_cranfield

    return load_cranfield(CRANFIELD)


def documents(n: int) -> tuple[list[str], str]:
    """``n`` documents (title + abstract) from Cranfield if present, else the built-in sample."""
    if (CRANFIELD / "cran.all.1400").is_file():
        collection = _cranfield()
        texts = [t for t in map(collection.doc_text, collection.doc_ids()) if t.strip()]
        return texts[:n], f"Cranfield ({CRANFIELD})"
    reps = -(-n // len(SAMPLE_DOCUMENTS))
    return (SAMPLE_DOCUMENTS * reps)[:n], "built-in sample (../shared/data/cranfield absent)"


def queries(n: int) -> tuple[list[str], str]:
    """``n`` queries from Cranfield if present, else the built-in sample."""
    if (CRANFIELD / "cran.qry").is_file():
        texts = list(_cranfield().queries.values())
        return texts[:n], f"Cranfield queries ({CRANFIELD})"
    reps = -(-n // len(SAMPLE_QUERIES))
    return (SAMPLE_QUERIES * reps)[:n], "built-in sample (../shared/data/cranfield absent)"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Fastest of ``repeats`` runs: the least disturbed by other work on a shared machine."""
    times, result = [], None
    for _ in range(repeats):
        elapsed, result = timed(fn)
        times.append(elapsed)
    return min(times), result


def matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul rate of this machine (FLOP/s), best of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    seconds, _ = best_of(lambda: torch.mm(a, b), repeats)
    return 2 * size**3 / seconds


def machine_line() -> str:
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {sys.version.split()[0]}, load average {load:.2f}"
    )


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A GitHub-flavoured markdown table, so the output can be pasted into the docs."""
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
