"""Reading the embedding: the last hidden state at the embed token, located by id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def backbone_of(causal_lm: Any) -> torch.nn.Module:
    """The base transformer of a causal LM (or a PEFT wrapper of one), without the LM head."""
    model = causal_lm
    if hasattr(model, "get_base_model"):  # peft.PeftModel
        model = model.get_base_model()
    return model.get_decoder()


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to one tensor; returns ``(input_ids, attention_mask)``."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if side == "left":
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        else:
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
    return ids, mask


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore padding, so left and right padding give the same states."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def embed_token_positions(input_ids: torch.Tensor, embed_id: int) -> torch.Tensor:
    """Column of the (last) embed token in each row; every row must contain one."""
    hits = input_ids == embed_id
    missing = (~hits.any(dim=1)).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"Rows {missing} contain no embed token (id {embed_id}).")
    columns = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    return torch.where(hits, columns, -1).max(dim=1).values


def pool_embed_token(
    hidden: torch.Tensor, input_ids: torch.Tensor, embed_id: int, normalize: bool = True
) -> torch.Tensor:
    """Hidden state at each row's embed token, optionally L2-normalised, as float32."""
    positions = embed_token_positions(input_ids, embed_id)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    pooled = hidden[rows, positions].float()
    return F.normalize(pooled, dim=-1) if normalize else pooled


def embed_forward(
    backbone: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    embed_id: int,
    normalize: bool = True,
) -> torch.Tensor:
    """One forward pass of the base transformer and the read-out; keeps gradients if enabled.

    This is the one implementation of the document path: inference, the sentence-transformers
    module and training all call it. Any padding side works; with right padding (or none) the
    mask is not passed on: under causal attention a real token never sees the padding after it,
    and attention without a padding mask runs the faster causal kernel.
    """
    if is_right_padded(attention_mask):
        out = backbone(input_ids=input_ids, use_cache=False)
    else:
        out = backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
    return pool_embed_token(out.last_hidden_state, input_ids, embed_id, normalize)


def is_right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row is its tokens followed only by padding (no padding before a token)."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
