"""The demo: a small corpus, a few example queries, and the model they run on.

``search-r3 demo`` indexes :func:`demo_documents` into the default embedded store (collection
``demo``) and runs :func:`demo_queries`, printing each query's reasoning and its hits.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from search_r3.store import QdrantStore, SearchResult

logger = logging.getLogger(__name__)

DEMO_COLLECTION = "demo"
#: Base LM of the demo model: shipped inside a PyPI package, so the demo runs offline.
DEMO_BASE = "smollm2-135m-instruct"


def demo_model_path(build: bool = True) -> Path:
    """Folder of the model the demo uses.

    ``$SEARCH_R3_DEMO_MODEL`` wins when set (a trained model, for instance). Otherwise an
    untrained search-r3 model made once from the offline SmolLM2-135M-Instruct base and cached
    under the search-r3 cache folder. Untrained means the vectors are the base model's hidden
    states at the embed token: the demo shows the mechanics, not trained retrieval quality.

    Args:
        build: Make the cached model if it is missing (about a minute, once). With ``False`` the
            path is returned whether or not it exists.
    """
    env = os.environ.get("SEARCH_R3_DEMO_MODEL")
    if env:
        return Path(env).expanduser()
    from search_r3.offline_models import cache_dir

    target = cache_dir() / "demo-models" / f"{DEMO_BASE}-r3"
    if build and not (target / "config.json").is_file():
        from search_r3.init_model import init_model
        from search_r3.offline_models import offline_model_path

        base = offline_model_path(DEMO_BASE)
        logger.info("Making the demo model %s from %s (once).", target, base)
        staging = target.with_name(target.name + ".partial")
        init_model(base, staging)
        staging.replace(target)  # appears whole or not at all
    return target


@dataclass
class DemoDocument:
    id: str
    title: str
    text: str
    topic: str

    @property
    def full_text(self) -> str:
        return f"{self.title}\n{self.text}"


def demo_documents() -> list[DemoDocument]:
    """The demo corpus: about forty short paragraphs on varied everyday topics."""
    raw = resources.files("search_r3").joinpath("demo_data/corpus.jsonl").read_text(encoding="utf-8")
    docs = []
    for line in raw.splitlines():
        if line.strip():
            row = json.loads(line)
            docs.append(DemoDocument(row["_id"], row["title"], row["text"], row["topic"]))
    return docs


def demo_queries() -> list[str]:
    """Example questions whose wording differs from the documents that answer them."""
    raw = resources.files("search_r3").joinpath("demo_data/queries.json").read_text(encoding="utf-8")
    return list(json.loads(raw))


def index_demo(store: QdrantStore, show_progress_bar: bool | None = None) -> int:
    """Add the demo corpus to ``store`` (nothing twice); returns the number of new documents."""
    docs = demo_documents()
    before = store.count()
    store.add_documents(
        [d.full_text for d in docs],
        ids=[d.id for d in docs],
        metadatas=[{"title": d.title, "topic": d.topic} for d in docs],
        show_progress_bar=show_progress_bar,
    )
    return store.count() - before


def run_demo_queries(
    store: QdrantStore,
    queries: list[str] | None = None,
    *,
    k: int = 3,
    max_reasoning_tokens: int | None = None,
    reasoning: bool | None = None,
) -> list[tuple[str, SearchResult]]:
    """Search each query (default: :func:`demo_queries`) and return the results in order."""
    return [
        (q, store.search(q, k=k, reasoning=reasoning, max_reasoning_tokens=max_reasoning_tokens))
        for q in (queries or demo_queries())
    ]
