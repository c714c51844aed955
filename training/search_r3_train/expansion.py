"""Reasoning that expands: relevance-feedback terms of the positives that the query lacks.

A training query's reasoning target should name what a relevant document would contain, not
only restate the query. Given the query's positives, each candidate term gets the relevance-model
weight of RM3 / Rocchio-style feedback::

    w(t) = mean over positives d of  tf(t, d) / |d|   ×   log(1 + N / df(t))

(``tf`` and ``|d|`` in stems after stop words, ``df``/``N`` over the whole training pool, which
includes the positives). Candidates are stems absent from the query, of three letters or more,
seen in at least ``min_df`` pool texts (a word of one document only is an idiosyncrasy, not
what relevant documents share) and in at most ``max_df_share`` of them; the top ones are written
in the surface form most used in the positives. Tokens are split with bm25s's pattern and
stemmed with PyStemmer's English Snowball stemmer, as the BM25 baseline does.

```python
from search_r3_train.expansion import TermStatistics, expansion_reasoning

stats = TermStatistics.from_texts(["the wing stalls at high angle of attack", "a boundary layer"])
print(expansion_reasoning("why does a wing stall", ["stall of a swept wing at high incidence"], stats))
```
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

#: bm25s's default token pattern: words of two or more word characters.
TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")
#: Reasoning styles of the data builder: the query's own words, or those plus expansion terms.
REASONING_STYLES = ("query", "expansion")


@lru_cache(maxsize=1)
def _stemmer():  # PyStemmer has no type stubs
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from search_r3.errors import SearchR3Error

        raise SearchR3Error("Expansion reasoning needs PyStemmer: pip install PyStemmer.") from exc
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from search_r3_train.build_data import english_stopwords

    return english_stopwords() | frozenset(ENGLISH_STOP_WORDS)


def tokens(text: str) -> list[tuple[str, str]]:
    """``(stem, surface)`` pairs of the content words of ``text`` (lower-cased, no stop words)."""
    words = [
        w
        for w in TOKEN_RE.findall(text.lower())
        if w not in _stopwords() and not w.isdigit() and not w.replace("_", "").isdigit()
    ]
    stems = _stemmer().stemWords(words)
    return list(zip(stems, words, strict=True))


@dataclass
class TermStatistics:
    """Document frequencies of stems over a pool of documents."""

    documents: int = 0
    df: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermStatistics:
        """Statistics of ``texts`` (each text counted once, duplicates included)."""
        stats = cls()
        for text in texts:
            stats.documents += 1
            stats.df.update({stem for stem, _ in tokens(text)})
        return stats

    def idf(self, stem: str) -> float:
        """``log(1 + N / df)``; an unseen stem counts as seen once."""
        return math.log(1.0 + self.documents / max(1, self.df.get(stem, 0)))


def expansion_terms(
    query: str,
    positives: Sequence[str],
    stats: TermStatistics,
    limit: int = 8,
    min_df: int = 2,
    max_df_share: float = 0.2,
) -> list[str]:
    """Up to ``limit`` feedback terms of ``positives`` absent from ``query``, best first."""
    query_stems = {stem for stem, _ in tokens(query)}
    weights: Counter[str] = Counter()
    surfaces: dict[str, Counter[str]] = {}
    for text in positives:
        pairs = tokens(text)
        if not pairs:
            continue
        counts = Counter(stem for stem, _ in pairs)
        for stem, surface in pairs:
            surfaces.setdefault(stem, Counter())[surface] += 1
        for stem, tf in counts.items():
            weights[stem] += tf / len(pairs) / len(positives)
    most = max_df_share * stats.documents
    ranked = sorted(
        (
            (w * stats.idf(s), s)
            for s, w in weights.items()
            if s not in query_stems and len(s) > 2 and min_df <= stats.df.get(s, 0) <= most
        ),
        key=lambda x: (-x[0], x[1]),
    )
    return [surfaces[s].most_common(1)[0][0] for _, s in ranked[:limit]]


def query_concepts(query: str, limit: int = 8) -> list[str]:
    """The query's content words in order, one per stem."""
    seen: dict[str, str] = {}
    for stem, surface in tokens(query):
        seen.setdefault(stem, surface)
    return list(seen.values())[:limit]


def expansion_reasoning(
    query: str,
    positives: Sequence[str],
    stats: TermStatistics,
    style: str = "expansion",
    concepts_limit: int = 8,
    expansion_limit: int = 8,
) -> str | None:
    """``Key concepts: <query terms>. Related: <expansion terms>.`` (about 16 keywords).

    ``style="query"`` writes the first sentence only: the ablation with the same data whose
    reasoning carries no expansion. None when the query has no content word.
    """
    if style not in REASONING_STYLES:
        raise ValueError(f"Unknown reasoning style {style!r}; use one of {', '.join(REASONING_STYLES)}.")
    concepts = query_concepts(query, concepts_limit)
    if not concepts:
        return None
    text = f"Key concepts: {', '.join(concepts)}."
    if style == "expansion":
        related = expansion_terms(query, positives, stats, expansion_limit)
        if related:
            text += f" Related: {', '.join(related)}."
    return text
