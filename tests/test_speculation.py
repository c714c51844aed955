"""Prompt-lookup speculation: drafted tokens change the number of forwards, never the output.

Each decoding runs with speculation on and off and must give the same token ids, forced flags
and (up to float32 rounding) embeddings. Three tiny random models: the conftest one as built,
which greedily repeats the last prompt token (so drafts are accepted: the speculative path
really runs, the tests assert it); a copy with random layers that writes runs of one token, then
of another (drafts kept, then a miss inside a draft); and one with larger random layers, which
writes varied tokens (drafts mostly miss: rollback at every position).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from search_r3 import ReasoningEmbeddings, SearchR3Settings, decoding
from search_r3.decoding import Decoder, DecodeRow, DecodeRules, reason_and_embed
from search_r3.engine import QueryEngine
from search_r3.errors import InvalidInputError
from search_r3.prompts import PromptBuilder
from search_r3.slot_decoder import SlotDecoder
from search_r3.speculation import draft, draft_limit

QUERIES = ["which city hosts the Louvre?", "fruit", "how do plants turn light into sugar?"]


@pytest.fixture(scope="module")
def models(tiny_llama_dir):
    found = {}
    for kind, scale in (("repeating", 0.0), ("runs", 0.05), ("varied", 0.1)):
        found[kind] = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for weight in found[kind].model.layers.parameters():
                if weight.dim() == 2 and scale:
                    weight.copy_(torch.randn(weight.shape, generator=generator) * scale)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    return found, PromptBuilder(tokenizer, SearchR3Settings())


@contextmanager
def _speculation_stats() -> Iterator[list]:
    """Collects the ``SpeculationStats`` of every ``Decoder`` made while the block runs."""
    stats: list = []
    original = Decoder.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        stats.append(self.speculation)

    Decoder.__init__ = init
    try:
        yield stats
    finally:
        Decoder.__init__ = original


def _decode(model, builder, prompts, budget, k, **options):
    """``reason_and_embed`` with ``k`` speculative tokens; returns (result, speculation stats)."""
    with _speculation_stats() as stats:
        defaults = {
            "embed_id": builder.embed_id,
            "stop_ids": [builder.embed_id, builder.tokenizer.eos_token_id],
            "forced_ids": builder.forced_ids,
        }
        out = reason_and_embed(
            model,
            prompts,
            pad_id=builder.tokenizer.pad_token_id,
            max_new_tokens=budget,
            speculative_tokens=k,
            backend="slots",
            **{**defaults, **options},
        )
    return out, stats[0]


def _assert_same(a, b):
    assert a.generated_ids == b.generated_ids
    assert a.forced == b.forced
    cosine = torch.nn.functional.cosine_similarity(a.embeddings, b.embeddings, dim=-1)
    assert float(cosine.min()) >= 0.99999


def test_draft_continues_a_list_of_the_prompt_s_words():
    prompt = [5, 6, 7, 8, 9]  # "... alpha beta gamma delta"
    assert draft([*prompt, 1, 6, 1, 7], 5, 3) == [1, 8, 1]  # ", alpha, beta" -> ", delta,"
    assert draft([*prompt, 1, 6, 1, 7], 5, 1) == [1]
    assert draft([*prompt, 1, 6, 1, 7], 5, 0) == []


def test_draft_continues_the_closing_sequence_and_earlier_text():
    closing = [9, 1, 2, 3]
    assert draft([4, 9, 1], 1, 5, closing) == [2, 3]  # then nothing matches
    assert draft([1, 2, 3, 4, 1, 2], 3, 3) == [3, 4, 1]  # the text itself: "1 2" came before
    assert draft([1, 2, 3], 3, 4) == []  # nothing recurs


@pytest.mark.parametrize("kind", ["repeating", "runs", "varied"])
@pytest.mark.parametrize("budget", [0, 1, 2, 3, 6, 13])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_speculation_keeps_tokens_and_embeddings_under_budgets(models, kind, budget, k):
    model_by_kind, builder = models
    prompts = [builder.reasoning_prompt_ids(QUERIES[0])]
    off, _ = _decode(model_by_kind[kind], builder, prompts, budget, 0)
    on, stats = _decode(model_by_kind[kind], builder, prompts, budget, k)
    _assert_same(on, off)
    assert len(on.generated_ids[0]) <= budget
    if kind != "varied" and budget >= 6:
        assert stats.accepted > 0  # drafts were checked and kept


def test_rows_draft_fewer_tokens_each_as_rows_grow():
    limits = [draft_limit(rows, 4) for rows in range(1, 33)]
    assert limits[0] == 4  # a lone row drafts all it may
    assert all(a >= b for a, b in itertools.pairwise(limits))
    assert all(rows * (n + 1) <= 12 or n == 1 for rows, n in enumerate(limits, start=1))
    assert min(limits) == 1  # every row still drafts its likeliest token
    assert draft_limit(1, 2) == 2 and draft_limit(8, 0) == 0


@pytest.mark.parametrize("kind", ["repeating", "runs", "varied"])
def test_banned_tokens_apply_at_every_drafted_position(models, kind):
    model_by_kind, builder = models
    prompts = [builder.reasoning_prompt_ids(q) for q in QUERIES]
    for prompt in prompts:
        off, _ = _decode(model_by_kind[kind], builder, [prompt], 16, 0, no_repeat_ngram_size=2)
        on, stats = _decode(model_by_kind[kind], builder, [prompt], 16, 4, no_repeat_ngram_size=2)
        _assert_same(on, off)
        ids = on.generated_ids[0]
        pairs = list(itertools.pairwise(ids))
        assert len(pairs) == len(set(pairs))  # no bigram twice: the bans held
        assert stats.forwards > 0


def test_the_closing_text_and_the_embed_token_are_accepted_as_drafts(models):
    """A model that repeats token x, with closing text "x x": the row writes it, and the embed
    token, drafted from the closing sequence, is kept in the same forward."""
    model_by_kind, builder = models
    model = model_by_kind["repeating"]
    prompt = builder.reasoning_prompt_ids(QUERIES[1])
    x = _decode(model, builder, [prompt], 2, 0)[0].generated_ids[0][0]
    options = {"closing_ids": [x, x], "forced_ids": [x, x, builder.embed_id]}
    off, off_stats = _decode(model, builder, [prompt], 12, 0, **options)
    on, stats = _decode(model, builder, [prompt], 12, 4, **options)
    _assert_same(on, off)
    assert on.generated_ids == [[x, x]] and on.forced == [False]
    assert stats.accepted >= 1 and off_stats.forwards == 0
    # the embedding is the state at the embed token's own position: a plain forward agrees
    with torch.no_grad():
        full = model.model(input_ids=torch.tensor([[*prompt, x, x, builder.embed_id]])).last_hidden_state
    want = torch.nn.functional.normalize(full[0, -1], dim=-1)
    assert float(on.embeddings[0] @ want) >= 0.99999


def test_a_stop_or_the_embed_token_picked_inside_a_draft(models):
    """The model switches from a run of one token to another inside a draft: as an end-of-turn
    id the row is forced there, as the embed token the row ends with its state, as without drafts."""
    model_by_kind, builder = models
    model = model_by_kind["runs"]
    prompt = builder.reasoning_prompt_ids(QUERIES[0])
    ids = _decode(model, builder, [prompt], 16, 0)[0].generated_ids[0]
    switch = next(t for t in ids if t != ids[0])
    cut = ids.index(switch)
    assert cut >= 3  # a run long enough for drafts to be kept before the switch

    as_stop = {"stop_ids": [builder.embed_id, switch]}
    off, _ = _decode(model, builder, [prompt], 16, 0, **as_stop)
    on, stats = _decode(model, builder, [prompt], 16, 4, **as_stop)
    _assert_same(on, off)
    assert on.generated_ids == [ids[:cut]] and on.forced == [True] and stats.accepted > 0

    # the closing sequence "x x x token" makes every "x x x" draft the token: kept when picked
    as_token = {"embed_id": switch, "stop_ids": [switch], "forced_ids": [*ids[:3], switch]}
    off, _ = _decode(model, builder, [prompt], 16, 0, **as_token)
    fed = []
    originals = SlotDecoder.verify, SlotDecoder.step

    def verify(self, tokens):
        fed.append(("verify", list(tokens)))
        return originals[0](self, tokens)

    def step(self, tokens):
        fed.append(("step", list(tokens)))
        return originals[1](self, tokens)

    SlotDecoder.verify, SlotDecoder.step = verify, step
    try:
        on, stats = _decode(model, builder, [prompt], 16, 4, **as_token)
    finally:
        SlotDecoder.verify, SlotDecoder.step = originals
    _assert_same(on, off)
    assert on.generated_ids == [ids[: cut + 1]] and on.forced == [False] and stats.accepted > 0
    # the token went in as a draft, kept: the last forward checked it, no plain step fed it
    assert fed[-1][0] == "verify" and switch in fed[-1][1]
    assert ("step", [switch]) not in fed


@pytest.fixture
def kept_with_rows(monkeypatch):
    """Every row draft (whatever the row count) and log (live rows, drafts kept) per checked row."""
    monkeypatch.setattr(decoding, "draft_limit", lambda rows, k: k)
    log = []
    original = Decoder._accept

    def accept(self, row, guesses, picks):
        used, done = original(self, row, guesses, picks)
        log.append((len(self.rows), used))
        return used, done

    monkeypatch.setattr(Decoder, "_accept", accept)
    return log


@pytest.mark.parametrize("kind", ["repeating", "runs", "varied"])
@pytest.mark.parametrize("budget", [2, 5, 10, 16])
@pytest.mark.parametrize("batch", [2, 3])
def test_several_rows_speculate_alike(models, kept_with_rows, kind, budget, batch):
    """Rows of different prompts (finishing at different steps) drafting together, each checked
    and cut back on its own, give what one token per row per step gives."""
    model_by_kind, builder = models
    prompts = [builder.reasoning_prompt_ids(q) for q in QUERIES * 2]
    accepted = []
    for ngram in (0, 2):  # with bans, at every drafted position of every row
        options = {"max_batch_size": batch, "no_repeat_ngram_size": ngram}
        off, _ = _decode(model_by_kind[kind], builder, prompts, budget, 0, **options)
        on, stats = _decode(model_by_kind[kind], builder, prompts, budget, 4, **options)
        _assert_same(on, off)
        accepted.append(stats.accepted)
    if kind != "varied" and budget >= 5:
        assert any(rows > 1 and used > 0 for rows, used in kept_with_rows)  # kept with others live
        assert accepted[0] > 0


def test_rows_ending_in_one_check_forward_leave_the_others_decoding(models, kept_with_rows):
    """Rows that end with different closing sequences and budgets: some finish inside a check
    forward (the embed token drafted and kept) while the others go on, cut back each its own way."""
    model_by_kind, builder = models
    model = model_by_kind["repeating"]
    prompts = [builder.reasoning_prompt_ids(q) for q in QUERIES]
    firsts = [_decode(model, builder, [p], 1, 0)[0].generated_ids[0][0] for p in prompts]
    x = firsts[1]
    options = {"closing_ids": [x, x], "forced_ids": [x, x, builder.embed_id]}
    off, _ = _decode(model, builder, prompts, 12, 0, **options)
    on, stats = _decode(model, builder, prompts, 12, 4, **options)
    _assert_same(on, off)
    assert on.generated_ids[1] == [x, x] and stats.accepted > 0
    assert any(rows == len(prompts) and used > 0 for rows, used in kept_with_rows)


def test_rollback_reads_nothing_stale(models):
    """Checking 4 tokens, keeping 2 and feeding another gives the states of feeding the 3 kept."""
    model_by_kind, builder = models
    model = model_by_kind["varied"]
    prompt = builder.reasoning_prompt_ids(QUERIES[2])
    with torch.inference_mode():
        spec = SlotDecoder(model)
        spec.admit([prompt])
        checked = spec.verify([11, 12, 13, 14])
        spec.truncate([len(prompt) + 2])
        after = spec.step([15])
        plain = SlotDecoder(model)
        plain.admit([prompt])
        states = [plain.step([t]) for t in (11, 12, 15)]
    assert spec.lengths == plain.lengths == [len(prompt) + 3]
    torch.testing.assert_close(checked[:2], torch.cat(states[:2]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after, states[2], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="truncate"):
        spec.truncate([len(prompt) + 4])


@pytest.mark.parametrize("bad", [-1, 1.5, "4", True, None])
def test_a_bad_setting_is_a_one_line_error(models, tiny_embeddings, bad):
    model_by_kind, builder = models
    with pytest.raises(InvalidInputError, match="speculative_tokens"):
        _decode(model_by_kind["varied"], builder, [[1, 2, 3]], 4, bad)
    rules = DecodeRules(embed_id=builder.embed_id, stop_ids=[], forced_ids=builder.forced_ids)
    with pytest.raises(InvalidInputError, match="speculative_tokens"):
        Decoder(model_by_kind["varied"], rules, 0, speculative_tokens=bad)
    before = tiny_embeddings.speculative_tokens
    with pytest.raises(InvalidInputError, match="speculative_tokens"):
        tiny_embeddings.speculative_tokens = bad
    assert tiny_embeddings.speculative_tokens == before


def test_staggered_engine_arrivals_match_encode_queries_without_speculation(tiny_llama_dir, kept_with_rows):
    emb = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_reasoning_tokens=40)
    emb.decode_backend = "slots"
    emb.speculative_tokens = 0
    alone = [emb.encode_queries([q], show_progress_bar=False) for q in QUERIES]
    emb.speculative_tokens = 4
    with QueryEngine(emb, max_batch_size=4) as engine:
        futures = []
        for i, q in enumerate(QUERIES):  # the first decodes alone for a step, then others join it
            futures.append(engine.submit(q))
            deadline = time.monotonic() + 30
            while engine.stats.steps <= i and time.monotonic() < deadline:
                time.sleep(0.0005)
        results = [f.result(timeout=60) for f in futures]
        accepted = engine._decoder.speculation.accepted
    for got, want in zip(results, alone, strict=True):
        assert got.reasoning == want.reasoning and got.forced.tolist() == want.forced.tolist()
        assert float(got.embeddings[0] @ want.embeddings[0]) >= 0.99999
    assert accepted > 0
    assert any(rows > 1 and used > 0 for rows, used in kept_with_rows)  # rows joined speculating ones


def test_rows_decode_alike_with_a_decoder_driven_by_hand(models):
    """A row admitted while another speculates: the pick made ahead stays with its own row."""
    model_by_kind, builder = models
    model = model_by_kind["repeating"]
    rules = DecodeRules(embed_id=builder.embed_id, stop_ids=[builder.embed_id], forced_ids=builder.forced_ids)
    prompts = [builder.reasoning_prompt_ids(q) for q in QUERIES[:2]]

    def run(k):
        decoder = Decoder(model, rules, 0, backend="slots", speculative_tokens=k)
        rows = [DecodeRow(p, max_new_tokens=10) for p in prompts]
        with torch.inference_mode():
            decoder.admit(rows[:1])
            decoder.step()
            decoder.admit(rows[1:])
            while decoder.rows:
                decoder.step()
        return rows, decoder.speculation

    (off, _), (on, stats) = run(0), run(4)
    for a, b in zip(on, off, strict=True):
        assert a.generated == b.generated and a.forced == b.forced
        assert float(a.embedding @ b.embedding) >= 0.99999
    assert stats.forwards > 0


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_shipped_model_reasons_alike_with_and_without_speculation(dtype):
    from search_r3.demo import demo_queries

    real = ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m", device="cpu", dtype=dtype)
    stats, same = [], 0
    for query in demo_queries():
        real.speculative_tokens = 0
        off = real.encode_queries([query], max_reasoning_tokens=48, show_progress_bar=False)
        real.speculative_tokens = 4
        with _speculation_stats() as made:
            on = real.encode_queries([query], max_reasoning_tokens=48, show_progress_bar=False)
        stats += made
        if dtype == "float32":
            assert on.reasoning == off.reasoning and on.forced.tolist() == off.forced.tolist()
            assert float(on.embeddings[0] @ off.embeddings[0]) >= 0.99999
            continue
        # bfloat16 rounds a forward of several tokens differently from a one-token step, so a
        # near tie can fall the other way: the reasoning agrees on a long prefix, and at least
        # half the queries agree whole
        ids_on, ids_off = (real.tokenizer(r.reasoning[0]).input_ids for r in (on, off))
        agree = next(
            (i for i, (a, b) in enumerate(zip(ids_on, ids_off, strict=False)) if a != b),
            min(len(ids_on), len(ids_off)),
        )
        assert agree >= min(12, len(ids_on), len(ids_off)), (query, on.reasoning, off.reasoning)
        same += on.reasoning == off.reasoning
        if on.reasoning == off.reasoning:
            assert float(on.embeddings[0] @ off.embeddings[0]) >= 0.999
    if dtype == "bfloat16":
        assert 2 * same >= len(list(demo_queries()))
    assert sum(s.accepted for s in stats) > 0


@pytest.mark.slow
def test_shipped_model_reasons_alike_with_several_rows_speculating():
    from search_r3.demo import demo_queries

    real = ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m", device="cpu", dtype="float32")
    queries = list(demo_queries())[:6]
    real.speculative_tokens = 0
    off = real.encode_queries(queries, max_reasoning_tokens=48, show_progress_bar=False)
    real.speculative_tokens = 4
    with _speculation_stats() as stats:
        on = real.encode_queries(queries, max_reasoning_tokens=48, show_progress_bar=False)
    assert on.reasoning == off.reasoning and on.forced.tolist() == off.forced.tolist()
    a, b = torch.as_tensor(on.embeddings), torch.as_tensor(off.embeddings)
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert float(cosine.min()) >= 0.99999
    assert stats[0].accepted > 0  # six rows drafting one token each kept some
