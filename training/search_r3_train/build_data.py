"""``search-r3-train build-data``: a reasoning-annotated training file from a collection, offline.

Two sources, both read from the collection's training side only:

* **judged queries** of one query split (Cranfield: ``train``; never ``test``): the judged
  documents are positives, unjudged BM25 hits hard negatives;
* **title pseudo-queries** (optional): every document with a title gives the query "its title"
  and the positive "its text with the title taken off the front" (titles are repeated as the first
  sentence in Cranfield abstracts; left in, the pair would be a string match). Hard negatives are
  unjudged BM25 hits from lower down the ranking (``--title_skip_top``), since near-duplicate
  documents high up are often relevant too. This is unsupervised domain adaptation on the
  corpus: no query of any split is used.

Reasoning is annotated on a share of the examples (``--reasoning_share``) with a short analysis
written from the query alone (``Key concepts: ...``), so the model learns the reasoning format,
where to stop and emit the embed token, and that the embedding after the analysis must retrieve
the positives. Annotating from the positive document would leak its words into the query side.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
from collections.abc import Sequence
from pathlib import Path

from search_r3.collections import Collection
from search_r3_train.data import (
    TrainingExample,
    collection_split,
    examples_from_collection,
    write_jsonl,
)

logger = logging.getLogger(__name__)

EXAMPLES = """examples:
  # the recipe's data: Cranfield train queries + title pseudo-queries, reasoning on half of them
  search-r3-train build-data ../shared/data/cranfield -o runs/data/train.jsonl --title_queries
  # only the judged train queries, every one with reasoning
  search-r3-train build-data ../shared/data/cranfield -o train.jsonl --reasoning_share 1
"""

_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9\-]*")
MIN_POSITIVE_CHARS = 40


def key_concepts(query: str, stopwords: frozenset[str], limit: int = 12) -> list[str]:
    """Content words of ``query`` in order of appearance, without stop words or repeats."""
    seen: list[str] = []
    for word in _WORD_RE.findall(query.lower()):
        word = word.strip("-")
        if len(word) > 1 and word not in stopwords and word not in seen:
            seen.append(word)
    return seen[:limit]


def reasoning_for(query: str, stopwords: frozenset[str]) -> str | None:
    """The annotated analysis of a query, or None when it has no content words."""
    concepts = key_concepts(query, stopwords)
    if not concepts:
        return None
    return f"Key concepts: {', '.join(concepts)}."


#: Question and function words a query's analysis should not list; bm25s's English list (the one
#: the BM25 baseline uses) is short and keeps them. Domain words ("thin", "system") stay content.
QUERY_FUNCTION_WORDS = frozenset(
    {
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "how",
        "why",
        "when",
        "where",
        "whether",
        "must",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
        "shall",
        "does",
        "do",
        "did",
        "done",
        "has",
        "have",
        "had",
        "having",
        "am",
        "been",
        "being",
        "any",
        "some",
        "also",
        "about",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "his",
        "her",
        "its",
        "them",
        "those",
        "these",
        "than",
        "so",
        "very",
        "more",
        "most",
        "other",
        "others",
        "there's",
        "anyone",
    }
)


def english_stopwords() -> frozenset[str]:
    """bm25s's English stop words (as the BM25 baseline) plus question and function words."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | QUERY_FUNCTION_WORDS


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace(" .", ".").split()).strip(" .")


def strip_title(title: str, text: str) -> str:
    """``text`` without a leading repeat of ``title`` (compared case- and space-insensitively)."""
    want = _normalise(title)
    words = text.split()
    for end in range(1, len(words) + 1):
        head = _normalise(" ".join(words[:end]))
        if head == want:
            return " ".join(words[end:]).lstrip(" .")
        if len(head) > len(want):
            break
    return text.strip()


def title_examples(
    collection: Collection, negatives_depth: int, skip_top: int, seed: int
) -> list[TrainingExample]:
    """One pseudo-query per titled document: title -> text without the title."""
    from search_r3_train.mine_negatives import bm25_negatives_for_collection

    queries, positives = {}, {}
    for doc_id in collection.doc_ids():
        doc = collection.corpus[doc_id]
        title = (doc.get("title") or "").strip().rstrip(" .")
        body = strip_title(title, doc.get("text") or "") if title else ""
        if len(title) < 8 or len(body) < MIN_POSITIVE_CHARS:
            continue
        queries[f"title:{doc_id}"] = title
        positives[f"title:{doc_id}"] = (doc_id, body)
    pseudo = Collection(
        name=f"{collection.name}-titles",
        corpus=collection.corpus,
        queries=queries,
        qrels={qid: {doc_id: 1} for qid, (doc_id, _) in positives.items()},
    )
    negatives = (
        bm25_negatives_for_collection(pseudo, depth=negatives_depth, skip_top=skip_top)
        if negatives_depth > 0
        else {}
    )
    examples = [
        TrainingExample(
            query=queries[qid],
            pos=[body],
            neg=[collection.doc_text(d) for d in negatives.get(qid, [])],
            source=f"{pseudo.name}:{doc_id}",
        )
        for qid, (doc_id, body) in positives.items()
    ]
    random.Random(seed).shuffle(examples)
    return examples


def annotate_reasoning(
    examples: Sequence[TrainingExample], share: float, seed: int, stopwords: frozenset[str]
) -> int:
    """Give a ``share`` of the examples (chosen with ``seed``) their analysis; returns how many."""
    rng = random.Random(seed)
    count = 0
    for example in examples:
        if rng.random() < share:
            example.reasoning = reasoning_for(example.query, stopwords)
            count += example.reasoning is not None
    return count


def add_collection_options(parser: argparse.ArgumentParser, depth_help: str) -> None:
    """Add the options every data builder shares.

    They are the collection, the output, the query split, the BM25 negative depth, the reasoning
    share and the seed.
    """
    parser.add_argument("collection", help="collection folder (Cranfield, BEIR or TREC layout)")
    parser.add_argument("-o", "--output", required=True, help="JSON lines file to write")
    parser.add_argument(
        "--split",
        default="train",
        choices=["train", "dev"],
        help="query split whose judged queries are used (test and all are refused; default: train)",
    )
    parser.add_argument("--split_fractions", type=float, nargs=3, default=[0.5, 0.2, 0.3])
    parser.add_argument("--split_seed", type=int, default=13)
    parser.add_argument("--depth", type=int, default=30, help=depth_help)
    parser.add_argument(
        "--reasoning_share",
        type=float,
        default=0.5,
        help="share of examples annotated with reasoning (the rest train the direct mode; default 0.5)",
    )
    parser.add_argument("--seed", type=int, default=13)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search-r3-train build-data",
        description="Build reasoning-annotated training data (JSON lines) from a collection, offline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_collection_options(parser, depth_help="BM25 hard negatives kept per judged query")
    parser.add_argument(
        "--title_queries", action="store_true", help="add one title pseudo-query per titled document"
    )
    parser.add_argument("--title_depth", type=int, default=20, help="BM25 negatives per title pseudo-query")
    parser.add_argument(
        "--title_skip_top",
        type=int,
        default=10,
        help="BM25 hits skipped before a title query's negatives (likely relevant; default: 10)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not 0.0 <= args.reasoning_share <= 1.0:
        raise SystemExit("error: --reasoning_share must lie between 0 and 1.")
    judged = collection_split(args.collection, args.split, args.split_fractions, args.split_seed)
    examples = examples_from_collection(judged, negatives_depth=args.depth, seed=args.seed)
    sources = {f"{judged.name} judged queries": len(examples)}
    if args.title_queries:
        titles = title_examples(judged, args.title_depth, args.title_skip_top, args.seed)
        sources[f"{judged.name} title pseudo-queries"] = len(titles)
        examples += titles
    random.Random(args.seed).shuffle(examples)
    stopwords = english_stopwords()
    annotated = annotate_reasoning(examples, args.reasoning_share, args.seed, stopwords)
    written = write_jsonl(examples, args.output)
    manifest = {
        "collection": str(args.collection),
        "split": args.split,
        "split_fractions": args.split_fractions,
        "split_seed": args.split_seed,
        "sources": sources,
        "examples": written,
        "with_reasoning": annotated,
        "seed": args.seed,
    }
    manifest_path = Path(args.output).with_suffix(".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("Wrote %d examples (%d with reasoning) to %s.", written, annotated, args.output)
    print(json.dumps(manifest, indent=2))
    return 0
