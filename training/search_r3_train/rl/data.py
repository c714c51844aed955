"""RL data: a corpus, training queries and their graded judgements, checked up front.

Stage 2 needs a collection, not pairs: every rollout is scored by ranking the whole corpus. Any
folder ``search_r3.collections.load_collection`` reads works (BEIR, TREC, classic/Cranfield);
its queries are split with ``split_queries`` (same seed and fractions as ``sft``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from search_r3.collections import Collection, load_collection, split_queries
from search_r3.errors import SearchR3Error

logger = logging.getLogger(__name__)


class RLDataError(SearchR3Error, ValueError):
    """The RL corpus, queries or judgements are unusable; the message names the fix."""


@dataclass
class RLData:
    """Corpus texts by index, the training queries, and ``qrels`` as ``query_id -> {doc index: gain}``."""

    doc_ids: list[str]
    documents: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[int, float]]

    @property
    def num_docs(self) -> int:
        return len(self.documents)

    def to_dataset(self):
        """A ``datasets.Dataset`` with ``prompt`` (the query text) and ``query_id`` columns."""
        from datasets import Dataset

        return Dataset.from_dict({"prompt": list(self.queries), "query_id": list(self.query_ids)})

    @classmethod
    def from_parts(
        cls,
        corpus: Mapping[str, str],
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, float]],
        source: str = "the collection",
    ) -> RLData:
        """Validate and index plain dicts: ``doc_id -> text``, ``query_id -> text``, judgements.

        Raises:
            RLDataError: empty corpus, no judged query, or judgements naming unknown documents
                or queries.
        """
        if not corpus:
            raise RLDataError(f"The corpus of {source} is empty: RL ranks the corpus, so it needs documents.")
        empty = {d for d, text in corpus.items() if not str(text).strip()}
        if empty:
            # as search_r3.evaluation does: an empty document has nothing to embed and is left out
            logger.warning(
                "%s: %d empty documents left out (e.g. %s).", source, len(empty), sorted(empty)[:3]
            )
            if len(empty) == len(corpus):
                raise RLDataError(
                    f"Every document of {source} is empty: RL ranks the corpus, so it needs text."
                )
            qrels = {q: {d: g for d, g in judged.items() if d not in empty} for q, judged in qrels.items()}
        doc_ids = [d for d in corpus if d not in empty]
        index = {d: i for i, d in enumerate(doc_ids)}
        unknown_docs = sorted({d for judged in qrels.values() for d in judged if d not in index})
        if unknown_docs:
            raise RLDataError(
                f"The judgements of {source} name {len(unknown_docs)} documents that are not in the corpus "
                f"(e.g. {unknown_docs[:5]}). Fix the qrels or the corpus so that every judged document id "
                "appears in the corpus."
            )
        unknown_queries = sorted(q for q in qrels if q not in queries)
        if unknown_queries:
            raise RLDataError(
                f"The judgements of {source} name {len(unknown_queries)} queries that do not exist "
                f"(e.g. {unknown_queries[:5]}); fix the qrels or the queries file."
            )
        judged = {
            q: {index[d]: float(g) for d, g in qrels.get(q, {}).items() if float(g) > 0} for q in queries
        }
        kept = [q for q in queries if judged[q]]
        if not kept:
            raise RLDataError(
                f"No query of {source} has a relevant document, so no reward can be computed; "
                "check the qrels file (relevance must be > 0) and the query split."
            )
        return cls(
            doc_ids=doc_ids,
            documents=[str(corpus[d]) for d in doc_ids],
            query_ids=kept,
            queries=[str(queries[q]) for q in kept],
            qrels={q: judged[q] for q in kept},
        )

    def sample_queries(self, max_queries: int, seed: int = 13) -> RLData:
        """At most ``max_queries`` training queries (a fixed random sample, in their original order)."""
        if max_queries >= len(self.query_ids):
            return self
        if max_queries < 1:
            raise RLDataError("rl_max_queries must be >= 1.")
        keep = set(random.Random(seed).sample(self.query_ids, max_queries))
        picked = [i for i, q in enumerate(self.query_ids) if q in keep]
        return RLData(
            doc_ids=self.doc_ids,
            documents=self.documents,
            query_ids=[self.query_ids[i] for i in picked],
            queries=[self.queries[i] for i in picked],
            qrels={self.query_ids[i]: self.qrels[self.query_ids[i]] for i in picked},
        )

    def restrict(self, max_docs: int, seed: int = 13) -> RLData:
        """At most ``max_docs`` documents: every judged one plus a fixed random sample of the others.

        A cheaper proxy corpus for RL on a large collection (or a slow machine): rankings, and so
        rewards, are over this subset. Returns ``self`` when the corpus is already small enough.
        """
        if max_docs >= self.num_docs:
            return self
        judged = sorted({d for docs in self.qrels.values() for d in docs})
        if max_docs < len(judged):
            raise RLDataError(
                f"rl_max_docs={max_docs} is below the {len(judged)} judged documents of the training "
                "queries; raise it (or leave it unset to use the whole corpus)."
            )
        others = sorted(set(range(self.num_docs)) - set(judged))
        sample = random.Random(seed).sample(others, max_docs - len(judged))
        keep = sorted(judged + sample)
        new_index = {old: new for new, old in enumerate(keep)}
        return RLData(
            doc_ids=[self.doc_ids[i] for i in keep],
            documents=[self.documents[i] for i in keep],
            query_ids=list(self.query_ids),
            queries=list(self.queries),
            qrels={q: {new_index[d]: g for d, g in docs.items()} for q, docs in self.qrels.items()},
        )

    @classmethod
    def from_collection(cls, collection: Collection) -> RLData:
        corpus = {d: collection.doc_text(d) for d in collection.doc_ids()}
        return cls.from_parts(corpus, collection.queries, collection.qrels, source=collection.name)


def load_rl_data(
    path: str | Path,
    split: str = "train",
    fractions: Sequence[float] = (0.5, 0.2, 0.3),
    seed: int = 13,
    qrels_split: str = "test",
) -> RLData:
    """Load a collection folder and keep the queries of one split (``train``, ``dev``, ``test``, ``all``).

    Args:
        path: BEIR, TREC or classic collection folder.
        split: Query split to train on; ``all`` keeps every judged query.
        fractions: Train/dev/test shares of the judged queries (as ``sft`` uses).
        seed: Seed of the split.
        qrels_split: For BEIR folders, which ``qrels/<name>.tsv`` holds the judgements.
    """
    source = Path(path).expanduser()
    if source.is_file():
        raise RLDataError(
            f"{source} is a file; RL needs a collection folder (corpus, queries and qrels: BEIR, TREC or "
            "Cranfield layout), because each rollout is scored by ranking the whole corpus."
        )
    collection = load_collection(source, split=qrels_split)
    if split != "all":
        parts = split_queries(collection, tuple(fractions), seed=seed)
        if split not in parts:
            raise RLDataError(f"Unknown query split {split!r}; choose train, dev, test or all.")
        collection = parts[split]
    return RLData.from_collection(collection)
