"""Embeddings from the policy being trained, through the same core code inference uses.

Documents are encoded from ``PromptBuilder.document_ids`` (tokenised once) and rollouts from
their prompt + completion ids; both go through ``search_r3.pooling.embed_forward`` on the base
transformer (no LM head), without gradients and with dropout off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from search_r3.model import length_sorted_batches
from search_r3.pooling import backbone_of, embed_forward, pad_batch
from search_r3.prompts import PromptBuilder


class PolicyEncoder:
    """Reads embeddings off the current policy.

    Args:
        model: The causal LM being trained, or a callable returning it (the trainer may wrap the
            model in PEFT after this object is built, so it is looked up at each call).
        prompts: Prompt builder of the model's tokenizer and settings.
        documents: Corpus texts, in corpus-index order.
        pad_id: Padding id.
        batch_size: Sequences per forward pass.
    """

    def __init__(
        self,
        model: Any | Callable[[], Any],
        prompts: PromptBuilder,
        documents: Sequence[str],
        pad_id: int,
        batch_size: int = 32,
        normalize: bool = True,
    ):
        self._model = model
        self.prompts = prompts
        self.embed_id = prompts.embed_id
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.normalize = normalize
        self._documents = list(documents)
        self._document_ids: list[list[int] | None] = [None] * len(self._documents)

    def bind(self, model: Any | Callable[[], Any]) -> None:
        """Read embeddings from ``model`` (or the model a callable returns) from now on."""
        self._model = model

    @property
    def model(self) -> Any:
        return (
            self._model()
            if callable(self._model) and not isinstance(self._model, torch.nn.Module)
            else self._model
        )

    def document_ids(self, index: int) -> list[int]:
        """Prompt ids of document ``index`` (tokenised on first use, then cached)."""
        ids = self._document_ids[index]
        if ids is None:
            ids = self.prompts.document_ids(self._documents[index])
            self._document_ids[index] = ids
        return ids

    def encode_documents(self, indices: Sequence[int]) -> torch.Tensor:
        """``(len(indices), dim)`` document vectors under the current weights."""
        return self.embed_ids([self.document_ids(int(i)) for i in indices])

    def embed_ids(
        self, sequences: Sequence[Sequence[int]], show_progress: bool | None = None
    ) -> torch.Tensor:
        """Embeddings of id sequences that contain the embed token, no gradients, in input order.

        A progress bar shows for long jobs (a full corpus refresh) unless ``show_progress`` says otherwise.
        """
        model = self.model
        device = next(model.parameters()).device
        if not sequences:
            hidden = model.config.get_text_config().hidden_size
            return torch.zeros((0, hidden), dtype=torch.float32, device=device)
        backbone = backbone_of(model)
        out: list[torch.Tensor | None] = [None] * len(sequences)
        was_training = model.training
        model.eval()  # no dropout in a read-out
        try:
            with torch.no_grad():
                batches = list(length_sorted_batches([len(s) for s in sequences], self.batch_size))
                show = len(sequences) > 256 if show_progress is None else show_progress
                for batch in tqdm(batches, desc="Encoding corpus", unit="batch", disable=not show):
                    ids, mask = pad_batch([sequences[i] for i in batch], self.pad_id)
                    vectors = embed_forward(
                        backbone, ids.to(device), mask.to(device), self.embed_id, self.normalize
                    )
                    for row, i in enumerate(batch):
                        out[i] = vectors[row]
        finally:
            model.train(was_training)
        return torch.stack(out)  # type: ignore[arg-type]
