"""Retrieval test collections: a corpus, queries and graded relevance judgements.

Three on-disk layouts load into one `Collection`:

* **BEIR**: a folder with ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
  (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).
* **TREC**: a folder with a corpus (``corpus``/``docs``/``collection`` as ``.jsonl`` or ``.tsv``),
  topics (``topics``/``queries`` as ``.tsv``, ``.jsonl`` or classic ``<top>`` SGML) and a qrels
  file (``qrels*``: ``qid 0 docid relevance`` per line).
* **Classic** (SMART) format, as the Cranfield collection ships: ``.I``/``.T``/``.W`` records for
  documents and queries, and a qrels file whose queries are numbered by position.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from search_r3.errors import InvalidInputError, SearchR3Error
from search_r3.jsonl import iter_json_objects

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class CollectionFormatError(SearchR3Error, ValueError):
    """A folder is not a test collection this module can read, or a file in it is malformed."""


@dataclass
class Collection:
    """A retrieval test collection held in memory.

    Attributes:
        name: Short name used in reports.
        corpus: ``doc_id -> {"title": ..., "text": ...}``.
        queries: ``query_id -> text``.
        qrels: ``query_id -> {doc_id: relevance}``; only relevance > 0 is kept.
    """

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def doc_text(self, doc_id: str) -> str:
        """Title and text joined by a newline (just the text when the title is empty)."""
        doc = self.corpus[doc_id]
        title = (doc.get("title") or "").strip()
        text = (doc.get("text") or "").strip()
        if title and text:
            return f"{title}\n{text}"
        return title or text

    def doc_ids(self) -> list[str]:
        """Document ids in corpus order."""
        return list(self.corpus)

    def subset(self, query_ids: Iterable[str]) -> Collection:
        """The same corpus with only ``query_ids`` (and their judgements)."""
        wanted = [q for q in query_ids if q in self.queries]
        return Collection(
            name=self.name,
            corpus=self.corpus,
            queries={q: self.queries[q] for q in wanted},
            qrels={q: dict(self.qrels[q]) for q in wanted if q in self.qrels},
        )

    def judged_query_ids(self) -> list[str]:
        """Queries with at least one relevant document, in query order."""
        return [q for q in self.queries if self.qrels.get(q)]

    def __repr__(self) -> str:
        return (
            f"Collection({self.name!r}, docs={len(self.corpus)}, queries={len(self.queries)}, "
            f"judgements={sum(len(v) for v in self.qrels.values())})"
        )


# -- entry points ---------------------------------------------------------------------------------
def load_collection(
    path: PathLike, split: str = "test", name: str | None = None, keep_line_breaks: bool = False
) -> Collection:
    """Load a BEIR, TREC or classic-format (Cranfield) collection from a folder, detecting the layout.

    Args:
        path: The collection folder.
        split: For BEIR folders, which ``qrels/<split>.tsv`` to read.
        name: Name for reports (default: the folder name).
        keep_line_breaks: Classic-format records keep their original line breaks instead of being
            joined into one line (BEIR and TREC texts are always read as stored). Used to measure
            how sensitive a model is to document layout.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise CollectionFormatError(f"{root} does not exist; pass the folder that holds the collection.")
    if not root.is_dir():
        raise CollectionFormatError(
            f"{root} is a file; pass the folder that holds the collection (corpus, queries, qrels)."
        )
    if (root / "corpus.jsonl").is_file() and (root / "queries.jsonl").is_file() and (root / "qrels").is_dir():
        return load_beir(root, split=split, name=name)
    if _classic_files(root) is not None:
        return load_classic(root, name=name, keep_line_breaks=keep_line_breaks)
    if _find(root, _TREC_CORPUS) and _find(root, _TREC_TOPICS) and _find(root, _TREC_QRELS):
        return load_trec(root, name=name)
    listing = ", ".join(sorted(p.name for p in root.iterdir())[:12]) or "(empty)"
    raise CollectionFormatError(
        f"{root} is not a collection search-r3 can read (found: {listing}). Expected one of:\n"
        "  BEIR:    corpus.jsonl, queries.jsonl, qrels/test.tsv\n"
        "  TREC:    corpus.jsonl|tsv, topics.tsv|jsonl|txt, qrels.txt (qid 0 docid rel)\n"
        "  classic: *.all.* documents, *.qry queries, *qrel* judgements (.I/.T/.W records)"
    )


def load_cranfield(path: PathLike) -> Collection:
    """The Cranfield collection (``cran.all.1400``, ``cran.qry``, ``cranqrel``) from a folder.

    Query ids are positions 1..225 (as ``cranqrel`` numbers them, not the irregular ``.I``
    numbers); documents are title (``.T``) and abstract (``.W``); gain = 5 - relevance code.
    """
    root = Path(path).expanduser()
    files = (root / "cran.all.1400", root / "cran.qry", root / "cranqrel")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CollectionFormatError(
            f"{root} lacks {', '.join(missing)}; point to the folder holding the Cranfield files."
        )
    return _load_classic_files(*files, name="cranfield")


def load_classic(path: PathLike, name: str | None = None, keep_line_breaks: bool = False) -> Collection:
    """A classic-format (SMART ``.I``/``.T``/``.W``) collection from a folder.

    Args:
        path: The collection folder.
        name: Name for reports (default: the folder name).
        keep_line_breaks: Keep each field's original line breaks (default: join into one line).
    """
    root = Path(path).expanduser()
    files = _classic_files(root)
    if files is None:
        raise CollectionFormatError(
            f"{root} holds no classic collection: expected a documents file (*.all*), a queries "
            "file (*.qry) and a qrels file (*qrel*)."
        )
    return _load_classic_files(*files, name=name or root.name, keep_line_breaks=keep_line_breaks)


def check_fractions(fractions: Sequence[float]) -> None:
    """Three finite shares >= 0 (train, dev, test) with a positive sum, else ``InvalidInputError``."""
    values = list(fractions)
    if len(values) != 3 or not all(
        isinstance(f, (int, float)) and math.isfinite(f) and f >= 0 for f in values
    ):
        raise InvalidInputError(
            f"split fractions must be three non-negative finite shares (train dev test), got {values}; "
            "e.g. 0.5 0.2 0.3."
        )
    if sum(values) <= 0:
        raise InvalidInputError(
            f"split fractions {values} are all 0, so no query would be in any split; give e.g. 0.5 0.2 0.3."
        )


def split_queries(
    collection: Collection, fractions: tuple[float, ...] = (0.5, 0.2, 0.3), seed: int = 13
) -> dict[str, Collection]:
    """Disjoint train/dev/test query splits (fixed seed); only queries with judgements are used.

    Args:
        fractions: Shares of ``train``, ``dev`` and ``test`` (normalised to sum to one).
        seed: Shuffling seed; the same seed gives the same split on every machine.
    """
    check_fractions(fractions)
    ids = sorted(collection.judged_query_ids(), key=_natural_key)
    random.Random(seed).shuffle(ids)
    total = sum(fractions)
    n_train = round(len(ids) * fractions[0] / total)
    n_dev = round(len(ids) * fractions[1] / total)
    parts = {
        "train": ids[:n_train],
        "dev": ids[n_train : n_train + n_dev],
        "test": ids[n_train + n_dev :],
    }
    out = {}
    for split, members in parts.items():
        members_set = set(members)
        sub = collection.subset([q for q in collection.queries if q in members_set])
        sub.name = f"{collection.name}:{split}"
        out[split] = sub
    return out


# -- BEIR ---------------------------------------------------------------------------------------
def load_beir(path: PathLike, split: str = "test", name: str | None = None) -> Collection:
    """A BEIR-format folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""
    root = Path(path).expanduser()
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise CollectionFormatError(f"{qrels_file} not found; splits available: {have or 'none'}.")
    corpus = {}
    for row in _read_jsonl(root / "corpus.jsonl"):
        doc_id = _field(row, ("_id", "id", "doc_id", "docid"), root / "corpus.jsonl")
        corpus[doc_id] = {"title": str(row.get("title") or ""), "text": str(row.get("text") or "")}
    queries = {}
    for row in _read_jsonl(root / "queries.jsonl"):
        query_id = _field(row, ("_id", "id", "query_id", "qid"), root / "queries.jsonl")
        queries[query_id] = str(row.get("text") or row.get("query") or "")
    qrels = _read_qrels_tsv(qrels_file)
    # BEIR ships all queries in one file; keep those the split judges.
    queries = {q: t for q, t in queries.items() if q in qrels}
    return _finish(name or root.name, corpus, queries, qrels)


# -- TREC ---------------------------------------------------------------------------------------
_TREC_CORPUS = ("corpus", "docs", "documents", "collection")
_TREC_TOPICS = ("topics", "queries")
_TREC_QRELS = ("qrels",)


def load_trec(path: PathLike, name: str | None = None) -> Collection:
    """A TREC-style folder: corpus (jsonl/tsv), topics (tsv/jsonl/SGML) and a qrels file."""
    root = Path(path).expanduser()
    corpus_file = _find(root, _TREC_CORPUS)
    topics_file = _find(root, _TREC_TOPICS)
    qrels_file = _find(root, _TREC_QRELS)
    if not (corpus_file and topics_file and qrels_file):
        raise CollectionFormatError(
            f"{root}: a TREC collection needs a corpus file (corpus.jsonl|tsv), a topics file "
            "(topics.tsv|jsonl|txt) and a qrels file (qrels.txt)."
        )
    corpus = _read_trec_corpus(corpus_file)
    queries = _read_trec_topics(topics_file)
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 3:  # some qrels omit the iteration column
                parts = [parts[0], "0", parts[1], parts[2]]
            if len(parts) != 4:
                raise CollectionFormatError(
                    f"{qrels_file}:{number}: expected 'qid 0 docid relevance', got {line.strip()!r}."
                )
            _add_judgement(qrels, parts[0], parts[2], parts[3], qrels_file, number)
    return _finish(name or root.name, corpus, queries, qrels)


def _find(root: Path, stems: tuple[str, ...]) -> Path | None:
    for path in sorted(root.iterdir()):
        if path.is_file() and any(path.name.lower().startswith(stem) for stem in stems):
            return path
    return None


def _read_trec_corpus(path: Path) -> dict[str, dict[str, str]]:
    corpus: dict[str, dict[str, str]] = {}
    if path.suffix == ".jsonl" or path.name.endswith(".jsonl.gz"):
        for row in _read_jsonl(path):
            doc_id = _field(row, ("_id", "id", "docno", "doc_id", "docid"), path)
            text = row.get("text") or row.get("contents") or row.get("body") or ""
            corpus[doc_id] = {"title": str(row.get("title") or ""), "text": str(text)}
        return corpus
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row:
                continue
            if len(row) == 2:
                corpus[row[0]] = {"title": "", "text": row[1]}
            elif len(row) >= 3:
                corpus[row[0]] = {"title": row[1], "text": "\t".join(row[2:])}
            else:
                raise CollectionFormatError(f"{path}:{number}: expected 'docid<TAB>[title<TAB>]text'.")
    return corpus


_TOP_RE = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_TAG_RE = re.compile(r"<(num|title)>\s*(?:Number:|Topic:)?\s*(.*?)\s*(?=<|$)", re.S | re.I)


def _read_trec_topics(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    if "<top>" in text.lower():
        topics = {}
        for block in _TOP_RE.findall(text):
            tags = {k.lower(): " ".join(v.split()) for k, v in _TAG_RE.findall(block)}
            if "num" not in tags or "title" not in tags:
                raise CollectionFormatError(f"{path}: a <top> block lacks <num> or <title>.")
            topics[tags["num"]] = tags["title"]
        return topics
    if path.suffix == ".jsonl":
        return {
            _field(row, ("_id", "id", "qid", "query_id"), path): str(
                row.get("text") or row.get("query") or ""
            )
            for row in _read_jsonl(path)
        }
    topics = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise CollectionFormatError(f"{path}:{number}: expected 'qid<TAB>query text'.")
        qid, query = line.split("\t", 1)
        topics[qid.strip()] = query.strip()
    return topics


# -- classic (SMART) format -----------------------------------------------------------------------
def _classic_files(root: Path) -> tuple[Path, Path, Path] | None:
    if not root.is_dir():
        return None
    files = [p for p in sorted(root.iterdir()) if p.is_file()]
    docs = next((p for p in files if ".all" in p.name.lower()), None)
    queries = next((p for p in files if p.name.lower().endswith((".qry", ".que"))), None)
    qrels = next(
        (p for p in files if "qrel" in p.name.lower() or p.name.lower().endswith(".rel")),
        None,
    )
    # the readme next to cranqrel must not be taken for the qrels
    if qrels is not None and qrels.name.lower().endswith(".readme"):
        candidates = [p for p in files if "qrel" in p.name.lower() and not p.name.lower().endswith(".readme")]
        qrels = candidates[0] if candidates else None
    if docs and queries and qrels:
        return docs, queries, qrels
    return None


def _field_text(lines: list[str], keep_line_breaks: bool) -> str:
    if keep_line_breaks:
        return "\n".join(line for line in lines if line)
    return " ".join(" ".join(lines).split())


def _iter_records(path: Path, keep_line_breaks: bool = False) -> Iterator[tuple[str, dict[str, str]]]:
    """``(id, {field letter: text})`` for each ``.I`` record; a ``.I`` line without an id is skipped."""
    record_id: str | None = None
    fields: dict[str, list[str]] = {}
    current: str | None = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(".I"):
                if record_id is not None:
                    yield record_id, {k: _field_text(v, keep_line_breaks) for k, v in fields.items()}
                parts = line.split()
                record_id = parts[1] if len(parts) > 1 else None
                fields, current = {}, None
            elif len(line) >= 2 and line[0] == "." and line[1].isalpha() and line[2:].strip() == "":
                current = line[1].upper()
                fields.setdefault(current, [])
            elif current is not None and record_id is not None:
                fields[current].append(line.strip())
    if record_id is not None:
        yield record_id, {k: _field_text(v, keep_line_breaks) for k, v in fields.items()}


def _load_classic_files(
    docs_file: Path, queries_file: Path, qrels_file: Path, name: str, keep_line_breaks: bool = False
) -> Collection:
    corpus: dict[str, dict[str, str]] = {}
    # only documents keep their layout: queries are one line in every collection format
    for doc_id, fields in _iter_records(docs_file, keep_line_breaks):
        title = fields.get("T", "")
        text = fields.get("W", "")
        # Cranfield's abstracts repeat the title as their first sentence; kept as shipped, so
        # figures match other toolkits' (BM25 nDCG@10 0.511 over title + abstract).
        corpus[str(int(doc_id)) if doc_id.isdigit() else doc_id] = {"title": title, "text": text}
    # qrels number queries by position (1..n), not by their irregular .I numbers
    queries = {
        str(position): fields.get("W", "")
        for position, (_, fields) in enumerate(_iter_records(queries_file), 1)
    }
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 3:
                raise CollectionFormatError(
                    f"{qrels_file}:{number}: expected 'query doc relevance-code', got {line.strip()!r}."
                )
            code = int(parts[2])
            # codes: 1 = complete answer .. 4 = minimum interest; -1 / 5 = not relevant
            gain = 5 - code if 1 <= code <= 4 else 0
            _add_judgement(qrels, str(int(parts[0])), str(int(parts[1])), gain, qrels_file, number)
    return _finish(name, corpus, queries, qrels)


# -- shared helpers -------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> Iterator[dict]:
    for _, row in iter_json_objects(path, CollectionFormatError):
        yield row


def _field(row: dict, names: tuple[str, ...], path: Path) -> str:
    for name in names:
        if row.get(name) is not None:
            return str(row[name])
    raise CollectionFormatError(f"{path}: a record has none of the id fields {names}: {str(row)[:120]}")


def _read_qrels_tsv(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and not parts[-1].strip().lstrip("-").isdigit():
                continue  # header: query-id corpus-id score
            if len(parts) < 3:
                if not line.strip():
                    continue
                raise CollectionFormatError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'.")
            _add_judgement(qrels, parts[0], parts[1], parts[2], path, number)
    return qrels


def _add_judgement(
    qrels: dict[str, dict[str, int]], qid: str, doc_id: str, relevance: object, path: Path, number: int
) -> None:
    try:
        value = int(float(str(relevance)))
    except (ValueError, OverflowError):  # OverflowError: inf
        raise CollectionFormatError(
            f"{path}:{number}: relevance {relevance!r} is not a finite number; write a graded "
            "relevance such as 0, 1 or 2."
        ) from None
    if value > 0:
        qrels.setdefault(qid.strip(), {})[doc_id.strip()] = value


def _finish(
    name: str,
    corpus: dict[str, dict[str, str]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> Collection:
    if not corpus:
        raise CollectionFormatError(f"{name}: the corpus is empty.")
    if not queries:
        raise CollectionFormatError(f"{name}: no queries found.")
    unknown = {d for judged in qrels.values() for d in judged if d not in corpus}
    if unknown:
        logger.warning(
            "%s: %d judged documents are not in the corpus (e.g. %s); they count as unretrievable.",
            name,
            len(unknown),
            sorted(unknown)[:3],
        )
    dropped = [q for q, text in queries.items() if not text.strip()]
    if dropped:
        logger.warning("%s: %d empty queries dropped (e.g. %s).", name, len(dropped), dropped[:3])
        queries = {q: t for q, t in queries.items() if t.strip()}
    qrels = {q: judged for q, judged in qrels.items() if q in queries}
    return Collection(name=name, corpus=corpus, queries=queries, qrels=qrels)


def _natural_key(value: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", value))
