"""Batched reasoning decoding with the KV cache, ending each row at the embed token.

Each step feeds one token per live row over the cache. A row whose next token is the embed
token feeds it once more, and the hidden state of that step is its embedding: the sequence is
never re-run. A row that runs out of budget, or ends its turn without the token, is *forced*: the
closing text and the token are fed for it over the same cache instead of sampled tokens. When only
forced rows are left, their remaining closing ids go in one final step.

The closing text ("The embedding is ") commits a row to the embed token: a row that writes it is
given the token as its next input, as if it had picked it. Small models learn the closing text
long before the new token's output row wins the argmax; such rows are not counted as forced.

Rows that are done leave the batch and the cache at once, so a batch costs what its live rows
cost: a long reasoning does not make the finished rows pay for every further step. The prompt
head all rows share (chat template and system instruction) is computed once per batch.
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
    """Greedy by default, so the same query gives the same vector; sampling on request.

    Attributes:
        do_sample: Sample from the softmax instead of taking the most likely token.
        temperature: Softmax temperature when sampling.
        top_p: Nucleus sampling: keep the smallest set of tokens whose probability reaches it.
        seed: Seed of a private generator, so sampled reasoning can be reproduced.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")

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


def closing_end(ids: Sequence[int], closing: Sequence[int]) -> int | None:
    """Index just past the first occurrence of the closing text ``closing`` in ``ids``, or None."""
    width = len(closing)
    if width == 0:
        return None
    closing = list(closing)
    for end in range(width, len(ids) + 1):
        if list(ids[end - width : end]) == closing:
            return end
    return None


def banned_next_tokens(generated: Sequence[int], size: int) -> list[int]:
    """Tokens that would repeat an n-gram of ``size`` already in ``generated`` (empty when off)."""
    if size <= 0 or len(generated) < size:
        return []
    prefix = list(generated[len(generated) - size + 1 :]) if size > 1 else []
    return [
        generated[i + size - 1]
        for i in range(len(generated) - size + 1)
        if list(generated[i : i + size - 1]) == prefix
    ]


def _pick(logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None) -> torch.Tensor:
    if not options.do_sample:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.float() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < options.top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Batch:
    """The live rows of a decoding batch: their cache, attention mask and next positions."""

    def __init__(self, backbone: Any, cache_kw: str, rows: list[int], cache: Any, mask: torch.Tensor):
        self.backbone, self.cache_kw = backbone, cache_kw
        self.rows = rows  # input index of each batch row
        self.cache, self.mask = cache, mask
        self.lengths = mask.sum(dim=1)  # position of each row's next token

    def step(self, ids: torch.Tensor, ids_mask: torch.Tensor) -> torch.Tensor:
        """Feed ``ids`` (batch, width) over the cache; returns the last hidden states."""
        self.mask = torch.cat([self.mask, ids_mask], dim=1)
        positions = self.lengths.unsqueeze(1) + torch.arange(ids.shape[1], device=ids.device)
        out = self.backbone(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            **{self.cache_kw: self.cache},
        )
        self.cache = _cache_of(out)
        self.lengths = self.lengths + ids_mask.sum(dim=1)
        return out.last_hidden_state

    def keep(self, keep: list[int]) -> None:
        """Drop every batch row not in ``keep`` (batch positions) from the cache and the mask."""
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.lengths = self.mask[index], self.lengths[index]
        self.rows = [self.rows[j] for j in keep]
        # Columns that are padding in every remaining row stay in the cache (it cannot be cut on
        # the left), but they are masked out, so they change nothing.


#: A shared prompt prefix at least this long is computed once for the whole batch.
MIN_SHARED_PREFIX = 8


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the prefix all prompts share, leaving every prompt at least one token of its own."""
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


def _prefill(
    backbone: Any, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[_Batch, torch.Tensor]:
    """Run the prompts over an empty cache; returns the batch and each row's last hidden state.

    Prompts of one kind share their chat-template head (the system instruction: most of a short
    query's prompt), so that prefix is computed once and its cache copied to every row; only the
    rest, left-padded, is computed per row. The cache then reads ``prefix | padding | own tokens``.
    """
    cache_kw = _cache_keyword(backbone)
    shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
    if shared < MIN_SHARED_PREFIX:
        ids, mask = pad_batch(prompts, pad_id, side="left")
        ids, mask = ids.to(device), mask.to(device)
        out = backbone(
            input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=True
        )
        batch = _Batch(backbone, cache_kw, list(range(len(prompts))), _cache_of(out), mask)
        return batch, out.last_hidden_state[:, -1]

    head = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)
    cache = _cache_of(backbone(input_ids=head, use_cache=True))
    cache.batch_repeat_interleave(len(prompts))
    ids, own = pad_batch([p[shared:] for p in prompts], pad_id, side="left")
    ids, own = ids.to(device), own.to(device)
    mask = torch.cat([torch.ones(len(prompts), shared, dtype=own.dtype, device=device), own], dim=1)
    out = backbone(
        input_ids=ids,
        attention_mask=mask,
        position_ids=shared + position_ids_from_mask(own),
        use_cache=True,
        **{cache_kw: cache},
    )
    batch = _Batch(backbone, cache_kw, list(range(len(prompts))), _cache_of(out), mask)
    return batch, out.last_hidden_state[:, -1]


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
    closing_ids: Sequence[int] = (),
    no_repeat_ngram_size: int = 0,
) -> DecodedBatch:
    """Generate reasoning for each prompt and return the embedding at the embed token.

    Args:
        causal_lm: A Hugging Face causal LM (or PEFT wrapper); only its base transformer and
            its output embeddings are used.
        prompts: Token ids of reasoning prompts (ending at the start of the assistant turn).
        embed_id: Id of the embed token.
        stop_ids: Ids that end a row (the embed token and end-of-turn ids).
        pad_id: Id used for padding (masked out, its value does not matter).
        forced_ids: Ids fed after the reasoning of a row that did not emit the embed token;
            they must end with ``embed_id``.
        max_new_tokens: Most tokens generated per row, the embed token included.
        sampling: Greedy decoding when ``None``.
        normalize: L2-normalise the embeddings.
        closing_ids: Ids of the closing text (without the embed token); a row that generates
            them gets the embed token next. Empty: rows end only by emitting the token.
        no_repeat_ngram_size: A row never repeats an n-gram of this many of its generated
            tokens (prompt excluded); 0: off.
    """
    forced_ids = [int(i) for i in forced_ids]
    if not forced_ids or forced_ids[-1] != embed_id or forced_ids.count(embed_id) != 1:
        raise ValueError("forced_ids must end with the embed token and contain it once.")
    sampling = sampling or SamplingOptions()
    backbone = backbone_of(causal_lm)
    head = causal_lm.get_output_embeddings()
    device = next(causal_lm.parameters()).device
    generator = sampling.generator(device)
    stop = {int(i) for i in stop_ids} - {embed_id}
    closing = [int(i) for i in closing_ids]
    n = len(prompts)
    dim = int(causal_lm.config.get_text_config().hidden_size)
    embeddings = torch.zeros(n, dim, dtype=torch.float32, device=device)
    generated: list[list[int]] = [[] for _ in range(n)]
    forced = [False] * n
    if n == 0:
        return DecodedBatch(embeddings.cpu(), generated, forced)

    batch, last_hidden = _prefill(backbone, prompts, pad_id, device)
    scripts: dict[int, list[int]] = {}  # forced rows: closing ids still to feed

    while batch.rows:
        if all(r in scripts for r in batch.rows):
            # Only forced rows left: their remaining closing ids in one step, right-padded.
            width = max(len(scripts[r]) for r in batch.rows)
            chunk = torch.full((len(batch.rows), width), pad_id, dtype=torch.long, device=device)
            chunk_mask = torch.zeros_like(chunk)
            for j, r in enumerate(batch.rows):
                chunk[j, : len(scripts[r])] = torch.tensor(scripts[r], device=device)
                chunk_mask[j, : len(scripts[r])] = 1
            hidden = batch.step(chunk, chunk_mask)
            for j, r in enumerate(batch.rows):
                embeddings[r] = hidden[j, len(scripts[r]) - 1].float()
            break

        for r in batch.rows:  # out of budget: force before spending a pick on it
            if r not in scripts and len(generated[r]) >= max_new_tokens:
                forced[r], scripts[r] = True, list(forced_ids)
        picking = [j for j, r in enumerate(batch.rows) if r not in scripts]
        choice: dict[int, int] = {}
        if picking:
            logits = head(last_hidden[picking])
            for row, j in enumerate(picking):
                banned = banned_next_tokens(generated[batch.rows[j]], no_repeat_ngram_size)
                if banned:
                    logits[row, banned] = float("-inf")
            choice = dict(zip(picking, _pick(logits, sampling, generator).tolist(), strict=True))

        feed: list[int] = []
        for j, r in enumerate(batch.rows):
            token = choice.get(j)
            if token is not None and token in stop:  # the turn ended without the embed token
                forced[r], scripts[r] = True, list(forced_ids)
                token = None
            if token is None:
                token = scripts[r].pop(0)
            else:
                generated[r].append(token)
                if closing and generated[r][-len(closing) :] == closing:
                    scripts[r] = [embed_id]  # the row wrote the closing text: the token comes next
            feed.append(token)
        hidden = batch.step(
            torch.tensor(feed, device=device).unsqueeze(1),
            torch.ones(len(feed), 1, dtype=torch.long, device=device),
        )
        last_hidden = hidden[:, -1]
        done = [j for j, token in enumerate(feed) if token == embed_id]
        for j in done:
            embeddings[batch.rows[j]] = last_hidden[j].float()
        if done:
            keep = [j for j in range(len(feed)) if feed[j] != embed_id]
            if not keep:
                break
            batch.keep(keep)
            last_hidden = last_hidden[keep]

    if normalize:
        embeddings = F.normalize(embeddings, dim=-1)
    return DecodedBatch(embeddings=embeddings.cpu(), generated_ids=generated, forced=forced)
