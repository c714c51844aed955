"""Batched reasoning decoding with the KV cache, ending each row at the embed token.

Each step feeds one token per live row over the cache. A row that samples the embed token feeds
it once more and its embedding is the hidden state of that step: no re-run of the sequence. A row
that runs out of budget (or ends its turn without the token) gets the closing text and the token
appended in one final step over the same cache and is reported as forced.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from search_r3.pooling import backbone_of, pad_batch, position_ids_from_mask


def _cache_keyword(backbone: Any) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` during 5.x; accept both."""
    return "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    return output["cache"] if "cache" in output else output["past_key_values"]


@dataclass
class SamplingOptions:
    """Greedy by default, so the same query gives the same vector; sampling on request."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    def generator(self, device: torch.device) -> torch.Generator | None:
        if not self.do_sample or self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)


@dataclass
class DecodedBatch:
    """Result of :func:`reason_and_embed` for one batch, in input order."""

    embeddings: torch.Tensor  # (n, dim) float32
    generated_ids: list[list[int]]  # reasoning ids as generated, the embed token included if emitted
    forced: list[bool]


def _pick(logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None) -> torch.Tensor:
    if not options.do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / max(options.temperature, 1e-5)
    probs = F.softmax(logits, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < options.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def reason_and_embed(
    causal_lm: Any,
    prompts: Sequence[Sequence[int]],
    *,
    embed_id: int,
    stop_ids: Sequence[int],
    pad_id: int,
    forced_ids: Sequence[int],
    max_new_tokens: int,
    sampling: SamplingOptions | None = None,
    normalize: bool = True,
) -> DecodedBatch:
    """Generate reasoning for each prompt and return the embedding at the embed token."""
    sampling = sampling or SamplingOptions()
    backbone = backbone_of(causal_lm)
    head = causal_lm.get_output_embeddings()
    device = next(causal_lm.parameters()).device
    generator = sampling.generator(device)
    stop = set(int(i) for i in stop_ids)

    ids, mask = pad_batch(prompts, pad_id, side="left")
    ids, mask = ids.to(device), mask.to(device)
    out = backbone(
        input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=True
    )
    cache_kw = _cache_keyword(backbone)
    cache, last_hidden = _cache_of(out), out.last_hidden_state[:, -1]
    n = len(prompts)
    lengths = mask.sum(dim=1)
    generated: list[list[int]] = [[] for _ in range(n)]
    forced = [False] * n
    live = [True] * n
    embeddings = torch.zeros(n, last_hidden.shape[-1], dtype=torch.float32, device=device)

    for _ in range(max_new_tokens + 1):
        rows = [r for r in range(n) if live[r]]
        if not rows:
            break
        chosen = _pick(head(last_hidden[rows]), sampling, generator).tolist()
        feed = torch.full((n, 1), pad_id, dtype=torch.long, device=device)
        feed_mask = torch.zeros((n, 1), dtype=torch.long, device=device)
        emitted = []
        for r, token in zip(rows, chosen, strict=True):
            if len(generated[r]) >= max_new_tokens or (token in stop and token != embed_id):
                live[r], forced[r] = False, True  # out of budget, or the turn ended without the token
                continue
            generated[r].append(token)
            feed[r, 0], feed_mask[r, 0] = token, 1
            if token == embed_id:
                live[r] = False
                emitted.append(r)
        if not feed_mask.any():
            break
        mask = torch.cat([mask, feed_mask], dim=1)
        out = backbone(
            input_ids=feed,
            attention_mask=mask,
            position_ids=lengths.unsqueeze(1),
            use_cache=True,
            **{cache_kw: cache},
        )
        lengths = lengths + feed_mask.squeeze(1)
        cache, last_hidden = _cache_of(out), out.last_hidden_state[:, -1]
        for r in emitted:
            embeddings[r] = last_hidden[r].float()

    if any(forced):
        # All forced rows append the same ids, so one step over the cache serves them all.
        width = len(forced_ids)
        forced_rows = torch.tensor(forced, device=device)
        chunk = torch.full((n, width), pad_id, dtype=torch.long, device=device)
        chunk[forced_rows] = torch.tensor(list(forced_ids), dtype=torch.long, device=device)
        chunk_mask = forced_rows.long().unsqueeze(1).expand(n, width)
        mask = torch.cat([mask, chunk_mask], dim=1)
        positions = lengths.unsqueeze(1) + torch.arange(width, device=device)
        out = backbone(
            input_ids=chunk,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_kw: cache},
        )
        embeddings[forced_rows] = out.last_hidden_state[forced_rows, -1].float()

    if normalize:
        embeddings = F.normalize(embeddings, dim=-1)
    return DecodedBatch(embeddings=embeddings.cpu(), generated_ids=generated, forced=forced)
