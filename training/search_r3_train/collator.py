"""Turn training examples into token tensors with the core's prompt builder.

Each query becomes one sequence: the reasoning prompt plus the assistant turn
(``assistant_ids(reasoning)``) when the example has reasoning, else the direct query prompt.
Queries are left-padded so every assistant turn ends at the last column: the LM head then only
runs on the last few positions. Each query brings one positive and ``negatives_per_query``
hard negatives, laid out as ``[pos, neg, ..., neg]`` groups in the document batch.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

import torch

from search_r3.pooling import pad_batch
from search_r3.prompts import PromptBuilder
from search_r3_train.data import TrainingExample
from search_r3_train.losses import IGNORE_INDEX


def text_key(text: str) -> int:
    """A stable 63-bit key of a document text (to spot the same document in two groups)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") >> 1


class SFTCollator:
    """Builds query and document batches for `SFTTrainer`.

    Args:
        prompts: The model's prompt builder (templates, embed token, length limit).
        negatives_per_query: Hard negatives per query; drawn with replacement when an example
            has fewer, and from other examples' positives when it has none.
        pad_id: Padding token id.
        seed: Seed of the positive/negative sampling.
    """

    def __init__(self, prompts: PromptBuilder, negatives_per_query: int, pad_id: int, seed: int = 0):
        if negatives_per_query < 0:
            raise ValueError("negatives_per_query must be >= 0.")
        self.prompts = prompts
        self.negatives_per_query = negatives_per_query
        self.pad_id = pad_id
        self.rng = random.Random(seed)

    @property
    def group_size(self) -> int:
        """Documents per query: one positive and the negatives."""
        return 1 + self.negatives_per_query

    def query_sequence(self, example: TrainingExample) -> tuple[list[int], int]:
        """Token ids of the query sequence and the length of its assistant turn."""
        if example.reasoning:
            assistant = self.prompts.assistant_ids(example.reasoning)
            return self.prompts.reasoning_prompt_ids(example.query) + assistant, len(assistant)
        return self.prompts.query_ids(example.query), len(self.prompts.closing_ids)

    def _negatives(self, example: TrainingExample, batch: Sequence[TrainingExample]) -> list[str]:
        k = self.negatives_per_query
        if k == 0:
            return []
        pool = example.neg
        if not pool:  # no hard negatives: other queries' positives stand in
            own = set(example.pos)
            pool = [t for other in batch if other is not example for t in other.pos if t not in own]
        if not pool:
            pool = example.pos  # degenerate batch of one: masked out of InfoNCE, zero in the triplet
        if len(pool) >= k:
            return self.rng.sample(pool, k)
        return [self.rng.choice(pool) for _ in range(k)]

    def __call__(self, batch: Sequence[TrainingExample]) -> dict[str, Any]:
        queries, assistant_lengths, documents, positive_keys = [], [], [], []
        teacher, has_teacher = [], []
        for example in batch:
            ids, assistant = self.query_sequence(example)
            queries.append(ids)
            assistant_lengths.append(assistant)
            group = [self.rng.choice(example.pos), *self._negatives(example, batch)]
            documents.extend(group)
            positive_keys.append([text_key(t) for t in example.pos])
            scores = teacher_group(example, group)
            has_teacher.append(scores is not None)
            teacher.append(scores or [0.0] * len(group))
        query_ids, query_mask = pad_batch(queries, self.pad_id, side="left")
        # labels[b, t] is the token at t when t lies in the assistant turn (to be predicted from t-1)
        labels = torch.full_like(query_ids, IGNORE_INDEX)
        width = query_ids.shape[1]
        for row, length in enumerate(assistant_lengths):
            labels[row, width - length :] = query_ids[row, width - length :]
        doc_ids, doc_mask = pad_batch(
            [self.prompts.document_ids(t) for t in documents], self.pad_id, side="right"
        )
        most = max(len(k) for k in positive_keys)
        pos_keys = torch.full((len(batch), most), -1, dtype=torch.long)
        for row, keys in enumerate(positive_keys):
            pos_keys[row, : len(keys)] = torch.tensor(keys, dtype=torch.long)
        return {
            "query_input_ids": query_ids,
            "query_attention_mask": query_mask,
            "query_labels": labels,
            "doc_input_ids": doc_ids,
            "doc_attention_mask": doc_mask,
            "doc_keys": torch.tensor([text_key(t) for t in documents], dtype=torch.long),
            "query_positive_keys": pos_keys,
            "teacher_scores": torch.tensor(teacher, dtype=torch.float32),
            "teacher_mask": torch.tensor(has_teacher, dtype=torch.bool),
        }


def teacher_group(example: TrainingExample, group: Sequence[str]) -> list[float] | None:
    """The example's teacher scores of the texts in ``group``, or None when one has none."""
    if example.teacher_pos is None:
        return None
    known = dict(zip(example.neg, example.teacher_neg or [], strict=False))
    known.update(zip(example.pos, example.teacher_pos, strict=False))
    if any(text not in known for text in group):
        return None  # a stand-in negative from another example: no teacher score for it
    return [known[text] for text in group]
