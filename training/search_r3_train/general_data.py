"""``search-r3-train build-general-data``: the v2 recipe's training data, offline, in one command.

It writes one JSON lines file (plus a manifest and, optionally, a copy with reasoning on every
example) from:

* the collection's **judged train queries** and **title pseudo-queries** (as ``build-data``);
* **inverse-cloze crops** of the collection's documents: one sentence (not the first, which repeats
  the title in Cranfield) is the query, the document without it the positive. No query of any
  split is used;
* **general-domain pairs** from text that installs here (``general_sources``: man pages, Python's
  docstrings, FOLDOC, WordNet), with BM25 hard negatives from the same source. A fixed share of
  those documents (chosen by a hash of their id) is never trained on and is written as a
  BEIR-format held-out set (``--heldout``) that ``search-r3 eval`` reads.

Then, in this order: layout augmentation (``--layout_share`` of the texts re-wrapped with line
breaks, the same way every time a text occurs), reasoning targets (``--reasoning_style expansion``:
the query's concepts plus relevance-feedback terms of its positives; ``query``: the concepts only,
the ablation) and teacher scores for listwise distillation (``--teacher``: BM25 + all-MiniLM-L6-v2
fused by RRF).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from search_r3.collections import Collection
from search_r3.errors import SearchR3Error
from search_r3_train.build_data import MIN_POSITIVE_CHARS, add_collection_options, strip_title, title_examples
from search_r3_train.data import TrainingExample, collection_split, examples_from_collection, write_jsonl
from search_r3_train.expansion import REASONING_STYLES, TermStatistics, expansion_reasoning
from search_r3_train.general_sources import SOURCES, GeneralDoc, SourceMissingError, install, read_source

logger = logging.getLogger(__name__)

EXAMPLES = """examples:
  # the v2 recipe's data (training/recipes/smollm2-135m-v2.sh)
  search-r3-train build-general-data ../shared/data/cranfield -o runs/v2/train.jsonl \\
      --reasoning_copy runs/v2/train_reasoning.jsonl --heldout runs/v2/general-heldout --teacher
  # the ablation: the same data, reasoning restating the query only
  search-r3-train build-general-data ../shared/data/cranfield -o runs/v2-query/train.jsonl \\
      --reasoning_style query
  # a quick look: 50 pairs per general source, no teacher
  search-r3-train build-general-data ../shared/data/cranfield -o /tmp/t.jsonl --max_per_source 50
"""

#: Sentence ends in running text, including Cranfield's spaced " ." (a real splitter for prose
#: would need a language model such as punkt, which is not installed offline).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s+\.\s+")
CROP_MIN_WORDS, CROP_MAX_WORDS = 6, 40


def heldout_member(doc_id: str, percent: float) -> bool:
    """Whether ``doc_id`` falls in the held-out share (a stable hash, independent of the run)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little") % 10000 < percent * 100


def sentences(text: str) -> list[str]:
    """``text`` cut at sentence ends (kept without the final stop)."""
    return [s.strip(" .") for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip(" .")]


def crop_pair(title: str, text: str, rng: random.Random) -> tuple[str, str] | None:
    """One inverse-cloze pair: a sentence (not the first) and the text without it."""
    body = sentences(strip_title(title, text) if title else text)
    candidates = [i for i in range(1, len(body)) if CROP_MIN_WORDS <= len(body[i].split()) <= CROP_MAX_WORDS]
    if len(body) < 3 or not candidates:
        return None
    pick = rng.choice(candidates)
    rest = ". ".join(s for i, s in enumerate(body) if i != pick) + "."
    if len(rest) < MIN_POSITIVE_CHARS:
        return None
    return body[pick], rest


def pseudo_examples(
    name: str,
    corpus: dict[str, dict[str, str]],
    pairs: dict[str, tuple[str, str, str]],
    depth: int,
    skip_top: int,
) -> list[TrainingExample]:
    """Examples of pseudo-queries ``{qid: (query, doc_id, positive text)}`` with BM25 negatives."""
    from search_r3_train.mine_negatives import bm25_negatives_for_collection

    pseudo = Collection(
        name=name,
        corpus=corpus,
        queries={qid: query for qid, (query, _, _) in pairs.items()},
        qrels={qid: {doc_id: 1} for qid, (_, doc_id, _) in pairs.items()},
    )
    negatives = bm25_negatives_for_collection(pseudo, depth, skip_top) if depth > 0 and pairs else {}
    return [
        TrainingExample(
            query=query,
            pos=[positive],
            neg=[pseudo.doc_text(d) for d in negatives.get(qid, [])],
            source=f"{name}:{doc_id}",
        )
        for qid, (query, doc_id, positive) in pairs.items()
    ]


def crop_examples(collection: Collection, depth: int, skip_top: int, seed: int) -> list[TrainingExample]:
    """One inverse-cloze pseudo-query per document with enough sentences."""
    rng = random.Random(seed)
    pairs = {}
    for doc_id in collection.doc_ids():
        doc = collection.corpus[doc_id]
        pair = crop_pair((doc.get("title") or "").strip(), doc.get("text") or "", rng)
        if pair is not None:
            pairs[f"crop:{doc_id}"] = (pair[0], doc_id, pair[1])
    return pseudo_examples(f"{collection.name}-crops", collection.corpus, pairs, depth, skip_top)


def general_examples(
    docs: Sequence[GeneralDoc], depth: int, skip_top: int
) -> dict[str, list[TrainingExample]]:
    """Examples per source: each document's pseudo-query, BM25 negatives from the same source."""
    out = {}
    for source in sorted({d.source for d in docs}):
        mine = [d for d in docs if d.source == source]
        corpus = {d.doc_id: {"title": "", "text": d.text} for d in mine}
        pairs = {f"q:{d.doc_id}": (d.query, d.doc_id, d.text) for d in mine}
        out[source] = pseudo_examples(source, corpus, pairs, depth, skip_top)
    return out


def unique_ids(docs: Sequence[GeneralDoc]) -> list[GeneralDoc]:
    """``docs`` with repeated ids (the same headword twice) made unique by a ``#n`` suffix."""
    seen: Counter[str] = Counter()
    out = []
    for doc in docs:
        seen[doc.doc_id] += 1
        n = seen[doc.doc_id]
        out.append(doc if n == 1 else GeneralDoc(f"{doc.doc_id}#{n}", doc.query, doc.text, doc.source))
    return out


def write_beir(docs: Sequence[GeneralDoc], folder: str | Path) -> int:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv): each query judges its document."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    rows = {
        "corpus.jsonl": [{"_id": d.doc_id, "title": "", "text": d.text} for d in docs],
        "queries.jsonl": [{"_id": f"q{i}", "text": d.query} for i, d in enumerate(docs)],
    }
    for name, items in rows.items():
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in items)
        (folder / name).write_text("".join(lines), encoding="utf-8")
    judged = "".join(f"q{i}\t{d.doc_id}\t1\n" for i, d in enumerate(docs))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + judged, encoding="utf-8")
    return len(docs)


def rewrap(text: str, seed: int) -> str:
    """``text`` with line breaks every 50-80 characters (paragraph breaks kept), fixed per text."""
    key = int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=4).digest(), "little")
    width = 50 + key % 31
    return "\n\n".join(textwrap.fill(p, width=width) for p in text.split("\n\n"))


def augment_layout(examples: Sequence[TrainingExample], share: float, seed: int) -> int:
    """Re-wrap a ``share`` of the distinct document texts (every copy of a text alike)."""
    texts = sorted({t for e in examples for t in (*e.pos, *e.neg)})
    rng = random.Random(seed)
    chosen = {t: rewrap(t, seed) for t in texts if rng.random() < share}
    for example in examples:
        example.pos = [chosen.get(t, t) for t in example.pos]
        example.neg = [chosen.get(t, t) for t in example.neg]
    return len(chosen)


def annotate(
    examples: Sequence[TrainingExample], share: float, style: str, stats: TermStatistics, seed: int
) -> int:
    """Reasoning on a ``share`` of the examples (chosen with ``seed``); others get none."""
    rng = random.Random(seed)
    count = 0
    for example in examples:
        example.reasoning = (
            expansion_reasoning(example.query, example.pos, stats, style) if rng.random() < share else None
        )
        count += example.reasoning is not None
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search-r3-train build-general-data",
        description="Training data from a collection plus general text installed here (v2 recipe).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_collection_options(parser, depth_help="BM25 negatives per judged query")
    parser.add_argument("--reasoning_copy", help="also write the same examples, every one with reasoning")
    parser.add_argument("--heldout", help="folder for the held-out general-domain BEIR set")
    parser.add_argument("--pseudo_depth", type=int, default=15, help="BM25 negatives per pseudo-query")
    parser.add_argument("--no_titles", action="store_true", help="leave out title pseudo-queries")
    parser.add_argument("--no_crops", action="store_true", help="leave out inverse-cloze crops")
    parser.add_argument(
        "--sources",
        default="man,python,foldoc,wordnet",
        help=f"general sources, comma-separated, from {', '.join(SOURCES)} ('' for none)",
    )
    parser.add_argument("--max_per_source", type=int, default=1500, help="pairs read per general source")
    parser.add_argument("--heldout_percent", type=float, default=10.0, help="general docs held out (%%)")
    parser.add_argument("--install", action="store_true", help="apt-get install missing sources")
    parser.add_argument("--reasoning_style", choices=REASONING_STYLES, default="expansion")
    parser.add_argument("--layout_share", type=float, default=0.3, help="texts re-wrapped with line breaks")
    parser.add_argument("--teacher", action="store_true", help="store BM25+MiniLM RRF teacher scores")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    for name, value in (("reasoning_share", args.reasoning_share), ("layout_share", args.layout_share)):
        if not 0.0 <= value <= 1.0:
            raise SearchR3Error(f"--{name} must lie between 0 and 1, got {value}.")
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    for name in sources:
        if name not in SOURCES:
            raise SearchR3Error(f"Unknown source {name!r} in --sources; choose from {', '.join(SOURCES)}.")
    started = time.perf_counter()
    judged = collection_split(args.collection, args.split, args.split_fractions, args.split_seed)
    examples = examples_from_collection(judged, negatives_depth=args.depth, seed=args.seed)
    counts: dict[str, int] = {f"{judged.name} judged queries": len(examples)}
    if not args.no_titles:
        titles = title_examples(judged, args.pseudo_depth, 10, args.seed)
        counts[f"{judged.name} title pseudo-queries"] = len(titles)
        examples += titles
    if not args.no_crops:
        crops = crop_examples(judged, args.pseudo_depth, 3, args.seed)
        counts[f"{judged.name} inverse-cloze crops"] = len(crops)
        examples += crops
    train_docs, heldout_docs, licences = [], [], {}
    for name in sources:
        try:
            docs = list(read_source(name, args.max_per_source, args.seed))
        except SourceMissingError:
            if not args.install:
                raise
            install(name)
            docs = list(read_source(name, args.max_per_source, args.seed))
        licences[name] = {"licence": SOURCES[name].licence, "install": SOURCES[name].install}
        for doc in unique_ids(docs):
            (heldout_docs if heldout_member(doc.doc_id, args.heldout_percent) else train_docs).append(doc)
        logger.info("%s: %d pairs read.", name, len(docs))
    for name, items in general_examples(train_docs, args.pseudo_depth, 1).items():
        counts[f"{name} pairs"] = len(items)
        examples += items
    random.Random(args.seed).shuffle(examples)
    rewrapped = augment_layout(examples, args.layout_share, args.seed)
    stats = TermStatistics.from_texts(sorted({t for e in examples for t in (*e.pos, *e.neg)}))
    if args.teacher:
        from search_r3_train.teacher import add_teacher_scores, minilm_encoder

        add_teacher_scores(examples, minilm_encoder())
    annotated = annotate(examples, args.reasoning_share, args.reasoning_style, stats, args.seed)
    written = write_jsonl(examples, args.output)
    manifest = {
        "collection": str(args.collection),
        "split": args.split,
        "split_fractions": args.split_fractions,
        "split_seed": args.split_seed,
        "sources": counts,
        "general_sources": licences,
        "heldout": {
            "folder": args.heldout,
            "percent": args.heldout_percent,
            "pairs": dict(Counter(d.source for d in heldout_docs)),
        },
        "examples": written,
        "with_reasoning": annotated,
        "reasoning_style": args.reasoning_style,
        "layout_rewrapped_texts": rewrapped,
        "teacher": "BM25 + all-MiniLM-L6-v2, RRF k=60" if args.teacher else None,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.reasoning_copy:
        annotate(examples, 1.0, args.reasoning_style, stats, args.seed)
        copied = write_jsonl(examples, args.reasoning_copy)
        manifest["reasoning_copy"] = {"path": args.reasoning_copy, "examples": copied}
    if args.heldout:
        write_beir(heldout_docs, args.heldout)
    Path(args.output).with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0
