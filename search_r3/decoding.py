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
head all rows share (chat template and system instruction) is computed once and copied.

Greedy rows on the slots backend draft their next tokens by prompt lookup and all are checked in
one forward (``search_r3.speculation``): the same tokens in fewer forward passes. On that backend
rows joining a batch are fed their prompts in the same forward as the others' tokens, in chunks
of ``PREFILL_CHUNK`` (chunked prefill): a forward reads the weights once for all of them.

``Decoder`` is the one implementation of these rules. ``reason_and_embed`` (and so
``ReasoningEmbeddings.encode_queries``) runs prompts through it, refilling finished rows from the
prompts still waiting; ``search_r3.engine.QueryEngine`` admits queries as they arrive. It runs on
a KV backend: ``search_r3.slot_decoder.SlotDecoder`` (a preallocated cache that rows join and
leave mid-batch, with a lean forward, for Llama-layout models) or ``TransformersBackend`` (the
model's own forward and transformers' cache, for any model; rows join only an empty batch).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from search_r3.pooling import backbone_of, pad_batch, position_ids_from_mask
from search_r3.settings import check_count
from search_r3.speculation import DEFAULT_SPECULATIVE_TOKENS, draft, draft_limit


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
    """Result of ``reason_and_embed`` for one batch, in input order."""

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


#: A shared prompt prefix at least this long is computed once and copied to the rows using it.
MIN_SHARED_PREFIX = 8


#: Most prompt tokens a row is fed per step when prompts join a running batch (chunked
#: prefill): a long prompt fills over several steps, so the rows decoding beside it keep going.
PREFILL_CHUNK = 64


def fill_order(size: int, leaving: Sequence[int]) -> list[int]:
    """The rows that stay, as ``keep`` for a backend: each stays in its slot, and the last
    rows move into the slots of the rows ``leaving``, so a leaver costs one row's move.

    Example:
        ```python
        fill_order(5, [1])  # [0, 4, 2, 3]: row 4 takes slot 1
        ```
    """
    gone = set(leaving)
    staying = size - len(gone)
    movers = [j for j in range(staying, size) if j not in gone]
    return [slot if slot not in gone else movers.pop() for slot in range(staying)]


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the prefix all prompts share, leaving every prompt at least one token of its own."""
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


class TransformersBackend:
    """Rows decoded with the model's own forward and transformers' cache (any architecture).

    The cache grows by concatenation and cannot take rows of another length, so rows join only an
    empty batch (``joins_running`` is False): the engine then decodes in waves.
    """

    joins_running = False

    def __init__(self, causal_lm: Any, pad_id: int):
        self.backbone = backbone_of(causal_lm)
        self.head = causal_lm.get_output_embeddings()
        self.cache_kw = _cache_keyword(self.backbone)
        self.device = next(causal_lm.parameters()).device
        self.pad_id = pad_id
        self.prefix: list[int] = []
        self.cache: Any = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)
        self.lengths = torch.zeros(0, dtype=torch.long)

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    def set_prefix(self, ids: Sequence[int]) -> None:
        self.prefix = [int(i) for i in ids]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)

    def admit(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Run the prompts over an empty cache; returns each row's last hidden state.

        The prefix all prompts share (chat template and system instruction: most of a short
        query's prompt) is computed once and its cache copied to every row; only the rest,
        left-padded, is computed per row. The cache then reads ``prefix | padding | own tokens``.
        """
        if self.size:
            raise RuntimeError("TransformersBackend admits rows only into an empty batch.")
        device, backbone = self.device, self.backbone
        p = len(self.prefix)
        if p and all(len(x) > p and list(x[:p]) == self.prefix for x in prompts):
            shared = p
        else:
            shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
        if shared < MIN_SHARED_PREFIX:
            ids, mask = pad_batch(prompts, self.pad_id, side="left")
            ids, mask = ids.to(device), mask.to(device)
            out = backbone(
                input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=True
            )
        else:
            head = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)
            cache = _cache_of(backbone(input_ids=head, use_cache=True))
            cache.batch_repeat_interleave(len(prompts))
            ids, own = pad_batch([x[shared:] for x in prompts], self.pad_id, side="left")
            ids, own = ids.to(device), own.to(device)
            mask = torch.cat([torch.ones(len(prompts), shared, dtype=own.dtype, device=device), own], dim=1)
            out = backbone(
                input_ids=ids,
                attention_mask=mask,
                position_ids=shared + position_ids_from_mask(own),
                use_cache=True,
                **{self.cache_kw: cache},
            )
        self.cache, self.mask = _cache_of(out), mask
        self.lengths = mask.sum(dim=1)
        return out.last_hidden_state[:, -1]

    def _feed(self, ids: torch.Tensor, ids_mask: torch.Tensor) -> torch.Tensor:
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

    def step(self, tokens: Sequence[int]) -> torch.Tensor:
        ids = torch.tensor(list(tokens), device=self.device).unsqueeze(1)
        return self._feed(ids, torch.ones_like(ids))[:, -1]

    def step_many(self, scripts: Sequence[Sequence[int]]) -> torch.Tensor:
        width = max(len(s) for s in scripts)
        chunk = torch.full((len(scripts), width), self.pad_id, dtype=torch.long, device=self.device)
        chunk_mask = torch.zeros_like(chunk)
        for j, script in enumerate(scripts):  # right-padded: each row's last real token is read
            chunk[j, : len(script)] = torch.tensor(list(script), device=self.device)
            chunk_mask[j, : len(script)] = 1
        hidden = self._feed(chunk, chunk_mask)
        rows = torch.arange(len(scripts), device=self.device)
        return hidden[rows, torch.tensor([len(s) - 1 for s in scripts], device=self.device)]

    def keep(self, keep: Sequence[int]) -> None:
        keep = list(keep)
        if keep == list(range(self.size)):
            return
        if not keep:
            self.cache, self.mask = None, self.mask[:0, :0]
            self.lengths = self.lengths[:0]
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.lengths = self.mask[index], self.lengths[index]
        # Columns that are padding in every remaining row stay in the cache (it cannot be cut on
        # the left), but they are masked out, so they change nothing.


def decode_backend(causal_lm: Any, pad_id: int, kind: str = "auto") -> Any:
    """The KV backend rows decode on: ``"slots"``, ``"transformers"`` or ``"auto"`` (slots if the
    model has the Llama layout, see ``search_r3.slot_decoder.supports``)."""
    from search_r3 import slot_decoder

    if kind not in ("auto", "slots", "transformers"):
        raise ValueError(f"backend must be 'auto', 'slots' or 'transformers', got {kind!r}.")
    if kind == "slots" or (kind == "auto" and slot_decoder.supports(causal_lm)):
        if not slot_decoder.supports(causal_lm):
            raise ValueError("the slots backend runs only plain Llama-layout models (Llama, Qwen2).")
        return slot_decoder.SlotDecoder(causal_lm)
    return TransformersBackend(causal_lm, pad_id)


@dataclass
class DecodeRules:
    """What every row of a decoding obeys: how it ends, what forcing feeds, how tokens are picked.

    Attributes:
        embed_id: Id of the embed token.
        stop_ids: Ids that end a row (the embed token and end-of-turn ids).
        forced_ids: Ids fed after the reasoning of a row that did not emit the embed token; they
            must end with ``embed_id``.
        closing_ids: Ids of the closing text (without the embed token); a row that generates
            them gets the embed token next. Empty: rows end only by emitting the token.
        no_repeat_ngram_size: A row never repeats an n-gram of this many of its generated
            tokens (prompt excluded); 0: off.
        sampling: Greedy decoding when ``None``.
        normalize: L2-normalise the embeddings.
    """

    embed_id: int
    stop_ids: Sequence[int]
    forced_ids: Sequence[int]
    closing_ids: Sequence[int] = ()
    no_repeat_ngram_size: int = 0
    sampling: SamplingOptions | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        self.forced_ids = [int(i) for i in self.forced_ids]
        if (
            not self.forced_ids
            or self.forced_ids[-1] != self.embed_id
            or self.forced_ids.count(self.embed_id) != 1
        ):
            raise ValueError("forced_ids must end with the embed token and contain it once.")
        self.stop = {int(i) for i in self.stop_ids} - {self.embed_id}
        self.closing_ids = [int(i) for i in self.closing_ids]
        self.sampling = self.sampling or SamplingOptions()


@dataclass
class DecodeRow:
    """One prompt being decoded, and, once it is done, its result.

    Attributes:
        prompt: Token ids of the reasoning prompt.
        max_new_tokens: Most tokens generated for it, the embed token included.
        tag: Anything the caller wants back with the row (e.g. its input index).
        generated: Reasoning ids as generated, the embed token included if emitted.
        forced: Whether the closing text and the token were fed for it.
        embedding: The (normalised) float32 embedding, set when the row is done.
    """

    prompt: Sequence[int]
    max_new_tokens: int
    tag: Any = None
    generated: list[int] = field(default_factory=list)
    forced: bool = False
    script: list[int] | None = None  # closing ids still to feed (forced or committed rows)
    embedding: torch.Tensor | None = None


@dataclass
class SpeculationStats:
    """What prompt-lookup speculation did in a decoder (counters that only grow).

    Attributes:
        forwards: Row-steps where a greedy row drafted (whether or not a draft came out), counted
            per row: a check forward of 3 rows that drafted counts 3.
        drafted: Tokens drafted (``search_r3.speculation.draft``).
        accepted: Drafted tokens that were the greedy pick, kept without a step of their own.
    """

    forwards: int = 0
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance(self) -> float:
        """Accepted drafted tokens over drafted tokens."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_forward(self) -> float:
        """Tokens per row-step that drafted: the row's next token plus its accepted drafts."""
        return (self.forwards + self.accepted) / self.forwards if self.forwards else 0.0


class Decoder:
    """Rows decoding together, one token per row per step, over a KV backend.

    This is the one implementation of the decoding rules: ``reason_and_embed`` runs a fixed
    batch through it and ``search_r3.engine.QueryEngine`` admits rows while others decode.
    Not thread-safe: one thread drives a decoder.

    Greedy decoding on the slots backend is *speculative* (prompt lookup, see
    ``search_r3.speculation``): each step feeds every live row its next token and the tokens it
    drafted (up to ``speculative_tokens`` for a lone row, fewer per row as rows grow, see
    ``speculation.draft_limit``) in one forward, each row keeps the drafted tokens the rules pick
    anyway (greedy pick, banned tokens, budget, closing text and embed token) and is cut back
    past its own first miss. The tokens and the embeddings are those of one token per step; only
    the number of forward passes changes. Sampling, ``speculative_tokens=0``, a step where no
    row drafts, or the transformers backend decode one token per row per step.

    Example:
        ```python
        decoder = Decoder(model, rules, pad_id=0)
        decoder.admit([DecodeRow(prompt_ids, max_new_tokens=64)])
        while decoder.rows:
            for row in decoder.step():  # the rows that finished at this step
                print(row.generated, row.forced, row.embedding.shape)
        ```
    """

    def __init__(
        self,
        causal_lm: Any,
        rules: DecodeRules,
        pad_id: int,
        backend: str = "auto",
        speculative_tokens: int = DEFAULT_SPECULATIVE_TOKENS,
    ):
        self.speculative_tokens = check_count("speculative_tokens", speculative_tokens, 0)
        self.rules = rules
        self.backend = decode_backend(causal_lm, pad_id, backend)
        parameter = next(causal_lm.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.dim = int(causal_lm.config.get_text_config().hidden_size)
        self.generator = rules.sampling.generator(self.device)
        self.rows: list[DecodeRow] = []
        self.last: torch.Tensor | None = None  # hidden state after each live row's last token
        self.speculation = SpeculationStats()
        self._known: dict[int, int] = {}  # id(row) -> its next greedy pick, from a check forward
        #: id(row) -> prompt tokens not fed yet (chunked prefill, on backends that can ``join``)
        self._prefill: dict[int, list[int]] = {}

    @property
    def can_admit(self) -> bool:
        """Whether rows can join now (always with the slots backend; else only an empty batch)."""
        return self.backend.joins_running or not self.rows

    def set_prefix(self, ids: Sequence[int]) -> None:
        """A prompt head (e.g. the chat template and instruction) to compute once and share."""
        self.backend.set_prefix(ids)

    def admit(self, rows: Sequence[DecodeRow]) -> None:
        """Start decoding ``rows``; they take part from the next ``step`` on."""
        rows = list(rows)
        if not rows:
            return
        if not self.can_admit:
            raise RuntimeError("this backend admits rows only when no row is decoding.")
        live = self.backend.size
        chunked = hasattr(self.backend, "join") and hasattr(self.backend, "verify_rows")
        try:
            if chunked:  # no forward now: the next steps feed the prompts beside the live rows
                own = self.backend.join([row.prompt for row in rows])
                hidden = torch.zeros(len(rows), self.dim, dtype=self.dtype, device=self.device)
            else:
                hidden = self.backend.admit([row.prompt for row in rows])
        except BaseException:
            self.backend.keep(range(live))  # leave the running rows as they were
            raise
        if chunked:
            self._prefill.update((id(row), tokens) for row, tokens in zip(rows, own, strict=True))
        self.rows += rows
        self.last = hidden if self.last is None else torch.cat([self.last, hidden])

    def reset(self) -> None:
        """Drop every live row (after a failure)."""
        self.backend.keep([])
        self.rows, self.last, self._known, self._prefill = [], None, {}, {}

    def step(self) -> list[DecodeRow]:
        """Feed every live row its next token; returns the rows that finished (embedding set)."""
        rows, rules = self.rows, self.rules
        known, self._known = self._known, {}
        if not rows:
            return []
        filling = {j for j, row in enumerate(rows) if id(row) in self._prefill}  # prompt still fed
        if not filling and all(row.script is not None for row in rows):
            # Only forced rows left: their remaining closing ids in one step, right-padded.
            hidden = self.backend.step_many([row.script for row in rows])
            for j, row in enumerate(rows):
                self._finish(row, hidden[j])
            self.reset()
            return rows

        for j, row in enumerate(rows):  # out of budget: force before spending a pick on it
            if j not in filling and row.script is None and len(row.generated) >= row.max_new_tokens:
                row.forced, row.script = True, list(rules.forced_ids)
        picking = [j for j, row in enumerate(rows) if row.script is None and j not in filling]
        choice = {j: known[id(rows[j])] for j in picking if id(rows[j]) in known}  # a check forward's
        picking = [j for j in picking if j not in choice]
        if picking:
            assert self.last is not None
            hidden = self.last if len(picking) == len(rows) else self.last[picking]
            banned = [banned_next_tokens(rows[j].generated, rules.no_repeat_ngram_size) for j in picking]
            greedy = getattr(self.backend, "greedy", None)
            if greedy is not None and not rules.sampling.do_sample:
                picks = greedy(hidden, banned)  # the backend's argmax, without all the logits
            else:
                logits = self.backend.logits(hidden)
                for i, ids in enumerate(banned):
                    if ids:
                        logits[i, ids] = float("-inf")
                picks = _pick(logits, rules.sampling, self.generator).tolist()
            choice.update(zip(picking, picks, strict=True))

        closing = rules.closing_ids
        feed: list[int | None] = []  # None: a row still fed its prompt
        for j, row in enumerate(rows):
            if j in filling:
                feed.append(None)
                continue
            token = choice.get(j)
            if token is not None and token in rules.stop:  # the turn ended without the embed token
                row.forced, row.script = True, list(rules.forced_ids)
                token = None
            if token is None:
                assert row.script is not None
                token = row.script.pop(0)
            else:
                row.generated.append(token)
                if closing and row.generated[-len(closing) :] == closing:
                    row.script = [rules.embed_id]  # the row wrote the closing text: the token comes next
            feed.append(token)
        drafts = self._drafts(feed)
        if drafts or filling:
            return self._speculative_step(feed, drafts or [[] for _ in rows])
        hidden = self.backend.step(feed)
        done = [j for j, token in enumerate(feed) if token == rules.embed_id]
        for j in done:
            self._finish(rows[j], hidden[j])
        if done:
            keep = fill_order(len(feed), done)
            self.backend.keep(keep)
            self.rows = [rows[j] for j in keep]
            hidden = hidden[keep] if keep else None
        self.last = hidden
        return [rows[j] for j in done]

    def _drafts(self, feed: list[int | None]) -> list[list[int]] | None:
        """Each live row's drafted tokens after ``feed`` (empty for rows that draft none), or None
        when this step is a plain one (speculation off, sampling, no drafts, or a backend that
        cannot check them). Forced rows and rows fed the embed token draft nothing; the number
        per row follows ``search_r3.speculation.draft_limit`` (fewer as rows grow)."""
        rules, rows = self.rules, self.rows
        checks = hasattr(self.backend, "verify_rows")
        if not self.speculative_tokens or rules.sampling.do_sample or not checks:
            return None
        k = draft_limit(len(rows), self.speculative_tokens)
        if k == 0:
            return None
        drafts: list[list[int]] = []
        for row, token in zip(rows, feed, strict=True):
            if token is None or token == rules.embed_id or row.forced:
                drafts.append([])
                continue
            self.speculation.forwards += 1
            drafts.append(draft(list(row.prompt) + row.generated, len(row.prompt), k, rules.forced_ids))
        return drafts if any(drafts) else None

    def _speculative_step(self, feed: list[int | None], drafts: list[list[int]]) -> list[DecodeRow]:
        """One forward for every live row: its ``feed`` token and its drafted tokens, or for a
        row still fed its prompt (``feed`` None), the next chunk of it (``PREFILL_CHUNK``
        tokens at most). Each row keeps the drafted tokens the rules pick anyway (greedy pick,
        banned tokens, budget, closing text and embed token) and is cut back past its first
        miss. Returns the rows that finished (embed token fed)."""
        rules, rows = self.rules, self.rows
        starts = list(self.backend.lengths)
        chunks: dict[int, list[int]] = {}
        for j, row in enumerate(rows):
            if feed[j] is None:
                rest = self._prefill[id(row)]
                chunks[j], self._prefill[id(row)] = rest[:PREFILL_CHUNK], rest[PREFILL_CHUNK:]
        fed = [chunks[j] if j in chunks else [feed[j], *drafts[j]] for j in range(len(rows))]
        hidden = self.backend.verify_rows(fed)  # (rows, longest, hidden): the state after each
        # The pick after fed[j][i] assumes drafts[j][:i] were kept: only read along the kept
        # prefix. Picks are needed for the rows still picking (not fed their script) and for the
        # rows whose prompt is now complete; sampled rows pick at the next step.
        where: list[tuple[int, int]] = []
        if not rules.sampling.do_sample:
            for j, row in enumerate(rows):
                if j in chunks:
                    if not self._prefill[id(row)]:
                        where.append((j, len(fed[j]) - 1))
                elif row.script is None and feed[j] != rules.embed_id:
                    where += [(j, i) for i in range(len(fed[j]))]
        size = rules.no_repeat_ngram_size
        banned = [banned_next_tokens(rows[j].generated + drafts[j][:i], size) for j, i in where]
        flat = hidden[[j for j, _ in where], [i for _, i in where]] if where else hidden[:0, 0]
        flat_picks = self.backend.greedy(flat, banned) if where else []
        picks: dict[tuple[int, int], int] = dict(zip(where, flat_picks, strict=True))
        finished, used_by_row = [], []
        for j, row in enumerate(rows):
            if j in chunks:
                used_by_row.append(len(fed[j]) - 1)
                if not self._prefill[id(row)]:
                    del self._prefill[id(row)]
                continue
            used, done = self._accept(row, drafts[j], [picks.get((j, i)) for i in range(len(fed[j]))])
            used_by_row.append(used)
            self.speculation.accepted += used
            if done or feed[j] == rules.embed_id:
                self._finish(row, hidden[j, used])
                finished.append(j)
        self.backend.truncate([start + 1 + used for start, used in zip(starts, used_by_row, strict=True)])
        self.speculation.drafted += sum(len(guesses) for guesses in drafts)
        keep = fill_order(len(rows), finished) if finished else list(range(len(rows)))
        if finished:
            self.backend.keep(keep)
            self.rows = [rows[j] for j in keep]
        if not keep:
            self.last = None
            return [rows[j] for j in finished]
        index = torch.tensor(keep, device=hidden.device)
        self.last = hidden[index, torch.tensor([used_by_row[j] for j in keep], device=hidden.device)]
        for j in keep:
            row, pick = rows[j], picks.get((j, used_by_row[j]))
            if row.script is None and pick is not None:  # picked under the row's state now
                self._known[id(row)] = pick
        return [rows[j] for j in finished]

    def _accept(self, row: DecodeRow, guesses: list[int], picks: list[int | None]) -> tuple[int, bool]:
        """Keep the longest prefix of ``guesses`` the rules pick anyway after the row's fed
        token; ``picks[i]`` is the greedy pick after ``i`` kept guesses. Returns (guesses kept,
        whether the embed token was among them)."""
        rules = self.rules
        used = 0
        for i, guess in enumerate(guesses):
            if row.script is not None:  # the row wrote the closing text: the embed token is next
                if guess != row.script[0]:
                    break
                row.script.pop(0)
                return used + 1, guess == rules.embed_id
            pick = picks[i]
            if len(row.generated) >= row.max_new_tokens or pick in rules.stop or pick != guess:
                break  # a miss, or a rule the next step applies (forcing)
            row.generated.append(guess)
            used += 1
            if guess == rules.embed_id:  # the row emitted the token itself
                return used, True
            if rules.closing_ids and row.generated[-len(rules.closing_ids) :] == rules.closing_ids:
                row.script = [rules.embed_id]
        return used, False

    def _finish(self, row: DecodeRow, hidden: torch.Tensor) -> None:
        vector = hidden.float().unsqueeze(0)
        if self.rules.normalize:
            vector = F.normalize(vector, dim=-1)
        row.embedding = vector[0].cpu()
        row.script = []


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
    prefix: Sequence[int] | None = None,
    backend: str = "auto",
    max_batch_size: int | None = None,
    on_done: Callable[[int], Any] | None = None,
    speculative_tokens: int = DEFAULT_SPECULATIVE_TOKENS,
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
        prefix: A prompt head to compute once for the rows that start with it (default: the
            prefix the prompts share, if at least ``MIN_SHARED_PREFIX`` tokens).
        backend: ``"auto"``, ``"slots"`` or ``"transformers"`` (see ``decode_backend``).
        max_batch_size: Most rows decoding at once (default: all). The next prompts, in order,
            take the place of finished rows at once (on the transformers cache: once all are done).
        on_done: Called with the number of rows finished, after each step that finishes some.
        speculative_tokens: Most tokens a lone row drafts per step by prompt lookup when decoding
            greedily on the slots backend (fewer per row with several rows, see ``Decoder``);
            0: off. The output is the same.

    Example:
        ```python
        out = reason_and_embed(model, [prompt_ids], embed_id=embed, stop_ids=[embed, eos],
                               pad_id=0, forced_ids=forced, max_new_tokens=64)
        out.embeddings.shape  # (1, hidden)
        ```
    """
    rules = DecodeRules(
        embed_id=embed_id,
        stop_ids=stop_ids,
        forced_ids=forced_ids,
        closing_ids=closing_ids,
        no_repeat_ngram_size=no_repeat_ngram_size,
        sampling=sampling,
        normalize=normalize,
    )
    check_count("speculative_tokens", speculative_tokens, 0)
    n = len(prompts)
    dim = int(causal_lm.config.get_text_config().hidden_size)
    if n == 0:
        return DecodedBatch(torch.zeros(0, dim), [], [])
    decoder = Decoder(causal_lm, rules, pad_id, backend, speculative_tokens)
    if prefix is None and n > 1:
        prefix = prompts[0][: shared_prefix_length(prompts)]
    if prefix is not None and len(prefix) >= MIN_SHARED_PREFIX:
        decoder.set_prefix(prefix)
    rows = [DecodeRow(prompt=p, max_new_tokens=max_new_tokens, tag=i) for i, p in enumerate(prompts)]
    if max_batch_size is not None and max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}.")
    pending = deque(rows)
    while True:
        if pending and decoder.can_admit:
            room = (max_batch_size or n) - len(decoder.rows)
            decoder.admit([pending.popleft() for _ in range(min(room, len(pending)))])
        if not decoder.rows:
            break
        finished = decoder.step()
        if finished and on_done is not None:
            on_done(len(finished))
    return DecodedBatch(
        embeddings=torch.stack([row.embedding for row in rows]),
        generated_ids=[row.generated for row in rows],
        forced=[row.forced for row in rows],
    )
