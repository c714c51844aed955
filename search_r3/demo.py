"""The demo: a small corpus, a few example queries, and the model they run on.

``search-r3 demo`` indexes `demo_documents` into the default embedded store (collection
``demo``) and runs `demo_queries`, printing each query's reasoning and its hits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from search_r3.store import QdrantStore, SearchResult

DEMO_COLLECTION = "demo"
#: The model the demo uses: trained by this project and shipped with it, so the demo runs offline.
DEMO_MODEL = "search-r3-smollm2-135m"


def demo_model_path(build: bool = True) -> Path:
    """Folder of the model the demo uses.

    ``$SEARCH_R3_DEMO_MODEL`` wins when set (your own model, for instance). Otherwise the shipped
    ``search-r3-smollm2-135m`` (SmolLM2-135M-Instruct trained by ``make model``; see the model
    card), made once from its offline base and adapter and cached under the search-r3 cache folder.

    Args:
        build: Make the cached model if it is missing (about a minute, once). With ``False`` the
            path is returned whether or not it exists.
    """
    env = os.environ.get("SEARCH_R3_DEMO_MODEL")
    if env:
        return Path(env).expanduser()
    from search_r3.pretrained import pretrained_model_path

    return pretrained_model_path(DEMO_MODEL, build=build)


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
    """Search each query (default: `demo_queries`) and return the results in order."""
    return [
        (q, store.search(q, k=k, reasoning=reasoning, max_reasoning_tokens=max_reasoning_tokens))
        for q in (queries or demo_queries())
    ]
