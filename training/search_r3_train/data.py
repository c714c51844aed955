"""Training examples: JSON lines checked line by line, or a collection converted on the fly.

A training example is ``{"query": str, "pos": [str, ...], "neg": [str, ...], "reasoning": str?}``
(the layout FlagEmbedding and others use). Every problem in a file is reported with its file and
line before training starts, never as a crash inside the collator.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from search_r3.collections import Collection, check_fractions, load_collection, split_queries
from search_r3.errors import SearchR3Error

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test", "all")
MAX_REPORTED_ERRORS = 10


class DataFormatError(SearchR3Error, ValueError):
    """Training data is malformed; the message lists each problem as ``file:line: what``."""


@dataclass
class TrainingExample:
    """One query with its positive and (optional) hard negative documents."""

    query: str
    pos: list[str]
    neg: list[str] = field(default_factory=list)
    reasoning: str | None = None
    source: str = ""
    #: Teacher scores of ``pos`` and ``neg`` (same order), for listwise distillation; optional.
    teacher_pos: list[float] | None = None
    teacher_neg: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"query": self.query, "pos": self.pos, "neg": self.neg}
        if self.reasoning:
            row["reasoning"] = self.reasoning
        if self.teacher_pos is not None:
            row["teacher_pos"], row["teacher_neg"] = self.teacher_pos, self.teacher_neg or []
        return row


# -- JSON lines ---------------------------------------------------------------------------------
def _check_text_list(row: dict[str, Any], key: str, required: bool) -> str | None:
    """Problem with ``row[key]`` as a list of non-empty strings, or None."""
    if key not in row:
        return f'missing field "{key}"' if required else None
    value = row[key]
    if not isinstance(value, list):
        return f'"{key}" must be a list of strings, got {type(value).__name__}'
    if required and not value:
        return f'"{key}" is empty; every query needs at least one positive document'
    for i, item in enumerate(value):
        if not isinstance(item, str):
            return f'"{key}"[{i}] must be a string, got {type(item).__name__}'
        if not item.strip():
            return f'"{key}"[{i}] is an empty string'
    return None


def parse_example(row: Any, source: str) -> TrainingExample:
    """Validate one decoded JSON value; raises ``ValueError`` with a short description."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    query = row.get("query")
    if "query" not in row:
        raise ValueError('missing field "query"')
    if not isinstance(query, str):
        raise ValueError(f'"query" must be a string, got {type(query).__name__}')
    if not query.strip():
        raise ValueError('"query" is empty')
    for key, required in (("pos", True), ("neg", False)):
        problem = _check_text_list(row, key, required)
        if problem:
            raise ValueError(problem)
    reasoning = row.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise ValueError(f'"reasoning" must be a string or null, got {type(reasoning).__name__}')
    teacher = {key: _check_scores(row, key) for key in ("teacher_pos", "teacher_neg")}
    return TrainingExample(
        query=query,
        pos=list(row["pos"]),
        neg=list(row.get("neg", [])),
        reasoning=reasoning or None,
        source=source,
        **teacher,
    )


def _check_scores(row: dict[str, Any], key: str) -> list[float] | None:
    """``row[key]`` as teacher scores, one number per text of ``pos``/``neg``; None when absent."""
    if key not in row:
        return None
    value, texts = row[key], row.get(key.removeprefix("teacher_"), [])
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise ValueError(f'"{key}" must be a list of numbers')
    if len(value) != len(texts):
        raise ValueError(f'"{key}" has {len(value)} scores for {len(texts)} texts')
    return [float(x) for x in value]


def read_jsonl(path: str | os.PathLike[str]) -> list[TrainingExample]:
    """Read and check a JSON lines file; all problems (up to 10) are raised together."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist (expected a .jsonl file or a collection folder).")
    examples: list[TrainingExample] = []
    errors: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                examples.append(parse_example(json.loads(line), where))
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            except ValueError as exc:
                errors.append(f"{where}: {exc}")
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise DataFormatError(
            f"{len(errors)} bad line(s) in {path}; each line must be "
            '{"query": str, "pos": [str, ...], "neg": [str, ...], "reasoning": str (optional)}:\n  '
            + "\n  ".join(shown)
            + more
        )
    if not examples:
        raise DataFormatError(f"{path} holds no training examples.")
    return examples


def write_jsonl(examples: Iterable[TrainingExample], path: str | os.PathLike[str]) -> int:
    """Write examples as JSON lines; returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


# -- collections --------------------------------------------------------------------------------
def is_collection_path(path: str | os.PathLike[str]) -> bool:
    """A folder is read as a collection; a file as JSON lines."""
    return Path(path).is_dir()


def collection_split(
    path: str | os.PathLike[str], split: str, fractions: Sequence[float], seed: int
) -> Collection:
    """``split`` ("train", "dev", "test" or "all") of the collection in ``path``."""
    if split not in SPLITS:
        raise DataFormatError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if split != "all":
        check_fractions(fractions)  # before the (slow) collection load
    collection = load_collection(path)
    if split == "all":
        return collection.subset(collection.judged_query_ids())
    return split_queries(collection, fractions=tuple(fractions), seed=seed)[split]


def examples_from_collection(
    collection: Collection, negatives_depth: int = 30, seed: int = 13, skip_top: int = 0
) -> list[TrainingExample]:
    """Judged documents as positives and BM25 hard negatives (judged ones excluded) per query."""
    from search_r3_train.mine_negatives import bm25_negatives_for_collection

    negatives = (
        bm25_negatives_for_collection(collection, depth=negatives_depth, skip_top=skip_top)
        if negatives_depth > 0
        else {}
    )
    examples = []
    for qid in collection.judged_query_ids():
        positives = [d for d, rel in sorted(collection.qrels[qid].items(), key=lambda x: -x[1]) if rel > 0]
        pos_texts = [collection.doc_text(d) for d in positives if collection.doc_text(d).strip()]
        if not pos_texts:
            continue
        examples.append(
            TrainingExample(
                query=collection.queries[qid],
                pos=pos_texts,
                neg=[collection.doc_text(d) for d in negatives.get(qid, [])],
                source=f"{collection.name}:{qid}",
            )
        )
    random.Random(seed).shuffle(examples)
    return examples


def collection_from_examples(examples: Sequence[TrainingExample], name: str) -> Collection:
    """A small collection from JSON lines examples: their texts form the corpus, positives the qrels."""
    corpus: dict[str, dict[str, str]] = {}
    ids: dict[str, str] = {}

    def doc_id(text: str) -> str:
        if text not in ids:
            ids[text] = f"d{len(ids)}"
            corpus[ids[text]] = {"title": "", "text": text}
        return ids[text]

    queries, qrels = {}, {}
    for i, example in enumerate(examples):
        qid = f"q{i}"
        queries[qid] = example.query
        qrels[qid] = {doc_id(t): 1 for t in example.pos}
        for text in example.neg:
            doc_id(text)
    return Collection(name=name, corpus=corpus, queries=queries, qrels=qrels)


def load_training_examples(
    train_file: str, split: str, fractions: Sequence[float], seed: int, negatives_depth: int
) -> list[TrainingExample]:
    """Examples from a JSON lines file or from ``split`` of a collection folder."""
    if is_collection_path(train_file):
        collection = collection_split(train_file, split, fractions, seed)
        examples = examples_from_collection(collection, negatives_depth=negatives_depth, seed=seed)
        logger.info("%s: %d training queries with BM25 hard negatives.", collection.name, len(examples))
        if not examples:
            raise DataFormatError(f"The {split!r} split of {train_file} has no judged queries to train on.")
        return examples
    return read_jsonl(train_file)


def load_dev_collection(
    dev_file: str | None,
    train_file: str | None,
    split: str,
    fractions: Sequence[float],
    seed: int,
    max_queries: int | None = None,
    max_docs: int | None = None,
) -> Collection | None:
    """The collection scored during training, or None when there is nothing to evaluate on.

    ``max_docs`` keeps every judged document of the dev queries plus a fixed random sample of
    the others: a cheaper proxy for picking checkpoints on a large corpus.
    """
    source = dev_file or (train_file if train_file and is_collection_path(train_file) else None)
    if source is None:
        return None
    if is_collection_path(source):
        dev = collection_split(source, split, fractions, seed)
    else:
        dev = collection_from_examples(read_jsonl(source), name=Path(source).stem)
    if max_queries is not None and len(dev.queries) > max_queries:
        dev = dev.subset(list(dev.queries)[:max_queries])
    if max_docs is not None and len(dev.corpus) > max_docs:
        dev = _sample_corpus(dev, max_docs, seed)
    if not dev.judged_query_ids():
        raise DataFormatError(f"The dev data ({source}, split {split!r}) has no judged queries.")
    return dev


def _sample_corpus(collection: Collection, max_docs: int, seed: int) -> Collection:
    judged = {d for docs in collection.qrels.values() for d in docs if d in collection.corpus}
    others = sorted(set(collection.corpus) - judged)
    random.Random(seed).shuffle(others)
    keep = judged | set(others[: max(0, max_docs - len(judged))])
    corpus = {d: v for d, v in collection.corpus.items() if d in keep}
    return Collection(name=collection.name, corpus=corpus, queries=collection.queries, qrels=collection.qrels)


class ExampleDataset(Dataset):
    """A list of `TrainingExample` as a torch dataset (the collator does the rest)."""

    def __init__(self, examples: Sequence[TrainingExample]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> TrainingExample:
        return self.examples[index]
