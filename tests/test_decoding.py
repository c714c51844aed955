"""KV-cache reasoning: the embedding equals one plain forward over the whole sequence.

The tiny models of conftest start with small random weights and just repeat the last prompt
token; their decoder layers are re-drawn larger here so that greedy decoding writes varied tokens.
Such a model almost never emits the embed token (or the end of turn) by itself, so the "emitted"
paths use a copy whose LM head gets a bias on that token, tuned so that greedy decoding keeps its
own first tokens and then emits it at a chosen step.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from search_r3 import SamplingOptions, SearchR3Settings, decoding
from search_r3.decoding import MIN_SHARED_PREFIX, Decoder, fill_order, reason_and_embed, shared_prefix_length
from search_r3.pooling import backbone_of, embed_forward, pad_batch
from search_r3.prompts import PromptBuilder
from search_r3.slot_decoder import SlotDecoder

QUERIES = [
    "which city hosts the Louvre?",
    "how do plants turn light into sugar, and why does it matter for the climate?",
    "fruit",
    "what is the boiling point of water at high altitude",
    "who wrote the treaty that ended the thirty years war",
    "attention",
]


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.model.layers.parameters():
            if weight.dim() == 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    builder = PromptBuilder(tokenizer, SearchR3Settings())
    return model, tokenizer, builder


@pytest.fixture(params=["slots", "transformers"])
def backend(request):
    """Both KV backends: the preallocated slots (Llama layout) and transformers' own cache."""
    return request.param


def _decode(model, builder, prompts, budget, sampling=None, **options):
    return reason_and_embed(
        model,
        prompts,
        embed_id=builder.embed_id,
        stop_ids=[builder.embed_id, builder.tokenizer.eos_token_id],
        pad_id=builder.tokenizer.pad_token_id,
        forced_ids=builder.forced_ids,
        max_new_tokens=budget,
        sampling=sampling,
        **options,
    )


def _reference(model, builder, prompt, generated, forced):
    """Embedding from one plain forward of prompt + generated (+ closing ids when forced)."""
    seq = list(prompt) + list(generated) + (list(builder.forced_ids) if forced else [])
    ids, mask = pad_batch([seq], pad_id=0)
    with torch.no_grad():
        return embed_forward(backbone_of(model), ids, mask, builder.embed_id)[0]


def _greedy_logits(model, prompt, steps):
    """Logits of each step of plain greedy decoding, without any cache."""
    seq, logits = list(prompt), []
    with torch.no_grad():
        for _ in range(steps):
            step = model(input_ids=torch.tensor([seq])).logits[0, -1]
            logits.append(step)
            seq.append(int(step.argmax()))
    return logits


def biased_copy(model, prompts, token_id, first_step=2, last_step=10):
    """A copy of ``model`` that greedily writes its usual first tokens, then ``token_id``.

    Returns ``(copy, row, step)``: for prompt ``row`` the bias on ``token_id`` lies between the
    margin by which the token loses at ``step`` and the smallest margin of the earlier steps, so
    the earlier choices are unchanged and the token wins at ``step``.
    """
    for row, prompt in enumerate(prompts):
        margins = []
        for step in _greedy_logits(model, prompt, last_step + 1):
            others = step.clone()
            others[token_id] = -float("inf")
            margins.append(float(others.max() - step[token_id]))
        for step in range(first_step, last_step + 1):
            earlier = min(margins[:step])
            if earlier - margins[step] > 5e-3:
                biased = copy.deepcopy(model)
                head = biased.get_output_embeddings()
                head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0]))
                with torch.no_grad():
                    head.bias[token_id] = (earlier + margins[step]) / 2
                return biased, row, step
    raise AssertionError("no prompt where the token can be made to win at a later step")


def test_forced_row_equals_full_forward(setup, backend):
    model, _, builder = setup
    prompts = builder.build(QUERIES[:3], "reasoning")
    out = _decode(model, builder, prompts, budget=5, backend=backend)
    assert out.forced == [True, True, True]
    for row, prompt in enumerate(prompts):
        assert len(out.generated_ids[row]) == 5  # budget respected
        assert builder.embed_id not in out.generated_ids[row]
        want = _reference(model, builder, prompt, out.generated_ids[row], forced=True)
        assert torch.allclose(out.embeddings[row], want, atol=1e-5)
    assert torch.allclose(out.embeddings.norm(dim=-1), torch.ones(3))


def test_zero_budget_appends_the_closing_at_once(setup, backend):
    model, _, builder = setup
    prompt = builder.reasoning_prompt_ids(QUERIES[0])
    out = _decode(model, builder, [prompt], budget=0, backend=backend)
    assert out.generated_ids == [[]] and out.forced == [True]
    assert torch.allclose(out.embeddings[0], _reference(model, builder, prompt, [], True), atol=1e-5)


def test_greedy_matches_transformers_generate(setup, backend):
    model, _, builder = setup
    prompt = builder.reasoning_prompt_ids(QUERIES[1])
    out = _decode(model, builder, [prompt], budget=12, backend=backend)
    reference = model.generate(
        torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0
    )[0, len(prompt) :].tolist()
    assert out.generated_ids[0] == reference


def test_emitting_row_equals_full_forward(setup, backend):
    model, _, builder = setup
    prompts = builder.build(QUERIES, "reasoning")
    biased, row, step = biased_copy(model, prompts, builder.embed_id)
    prompt = prompts[row]
    out = _decode(biased, builder, [prompt], budget=32, backend=backend)
    assert out.forced == [False]
    generated = out.generated_ids[0]
    assert len(generated) == step + 1 and generated[-1] == builder.embed_id
    assert generated[:-1] == [int(t.argmax()) for t in _greedy_logits(model, prompt, step)]
    want = _reference(biased, builder, prompt, generated, forced=False)
    assert torch.allclose(out.embeddings[0], want, atol=1e-5)


def test_end_of_turn_without_token_is_forced(setup, backend):
    model, tokenizer, builder = setup
    prompts = builder.build(QUERIES, "reasoning")
    biased, row, step = biased_copy(model, prompts, tokenizer.eos_token_id)
    prompt = prompts[row]
    out = _decode(biased, builder, [prompt], budget=32, backend=backend)
    assert out.forced == [True]
    generated = out.generated_ids[0]
    assert len(generated) == step and tokenizer.eos_token_id not in generated  # the end is not kept
    want = _reference(biased, builder, prompt, generated, forced=True)
    assert torch.allclose(out.embeddings[0], want, atol=1e-5)


@pytest.mark.parametrize("token", ["embed", "eos"])
def test_mixed_batch_equals_rows_alone(setup, token, backend):
    """Rows that finish early leave the batch; every row still gets what it gets alone."""
    model, tokenizer, builder = setup
    token_id = builder.embed_id if token == "embed" else tokenizer.eos_token_id
    prompts = builder.build(QUERIES, "reasoning")
    biased, _, step = biased_copy(model, prompts, token_id)
    budget = step + len(builder.forced_ids) + 3  # long enough for finished rows to leave early
    alone = [_decode(biased, builder, [p], budget, backend=backend) for p in prompts]
    lengths = [len(a.generated_ids[0]) for a in alone]
    assert len(set(lengths)) > 1, "the batch must mix rows that finish at different steps"

    batch = _decode(biased, builder, prompts, budget, backend=backend)
    for row, (prompt, single) in enumerate(zip(prompts, alone, strict=True)):
        assert batch.generated_ids[row] == single.generated_ids[0], row
        assert batch.forced[row] == single.forced[0], row
        cosine = float(batch.embeddings[row] @ single.embeddings[0])
        assert cosine >= 0.99999, (row, cosine)
        want = _reference(biased, builder, prompt, batch.generated_ids[row], batch.forced[row])
        assert torch.allclose(batch.embeddings[row], want, atol=1e-5), row


def test_greedy_is_reproducible(setup, backend):
    model, _, builder = setup
    prompts = builder.build(QUERIES[:3], "reasoning")
    first, second = (_decode(model, builder, prompts, budget=6, backend=backend) for _ in range(2))
    assert first.generated_ids == second.generated_ids
    assert torch.equal(first.embeddings, second.embeddings)


def test_sampling_with_a_seed_is_reproducible(setup, backend):
    model, _, builder = setup
    prompts = builder.build(QUERIES[:2], "reasoning")

    def run(seed, **kw):
        return _decode(
            model, builder, prompts, 8, SamplingOptions(do_sample=True, seed=seed, **kw), backend=backend
        )

    a, b, c = run(1), run(1), run(2)
    assert a.generated_ids == b.generated_ids
    assert torch.equal(a.embeddings, b.embeddings)
    assert a.generated_ids != c.generated_ids  # a random tiny model is far from deterministic
    greedy = _decode(model, builder, prompts, 8, backend=backend)
    assert a.generated_ids != greedy.generated_ids
    # A nucleus this small keeps only the most likely token: sampling becomes greedy.
    assert run(3, top_p=1e-6).generated_ids == greedy.generated_ids


def test_invalid_options():
    with pytest.raises(ValueError, match="temperature"):
        SamplingOptions(do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingOptions(top_p=1.5)


def test_forced_ids_must_end_with_the_token(setup):
    model, _, builder = setup
    with pytest.raises(ValueError, match="forced_ids"):
        reason_and_embed(
            model,
            [[1, 2, 3]],
            embed_id=builder.embed_id,
            stop_ids=[],
            pad_id=0,
            forced_ids=[1, 2],
            max_new_tokens=2,
        )


def test_empty_batch(setup):
    model, _, builder = setup
    out = _decode(model, builder, [], budget=4)
    assert out.embeddings.shape == (0, 64) and out.generated_ids == [] and out.forced == []


def test_shared_prefix_length():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # each prompt keeps a token of its own
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0


def test_the_shared_template_head_is_computed_once(setup, backend):
    """Once per batch on the transformers cache; once per model (kept with it) on the slots."""
    model, _, builder = setup
    prompts = builder.build(QUERIES[:4], "reasoning")
    shared = shared_prefix_length(prompts)
    assert shared >= MIN_SHARED_PREFIX  # the system instruction and the template around it
    shapes = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: shapes.append(tuple(args[0].shape))
    )
    try:
        outs = [_decode(model, builder, prompts, budget=3, backend=backend) for _ in range(2)]
    finally:
        hook.remove()
    own = [len(p) - shared for p in prompts]
    if backend == "transformers":  # the rest of the prompts, once per batch, left-padded
        assert shapes.count((4, max(own))) == 2
        assert shapes.count((1, shared)) == 2
        rest = [shape for shape in shapes if shape != (1, shared)]
        assert all(width <= max(own) for _, width in rest)  # no row ran its whole prompt
    else:  # the rest of the prompts, once per batch, their real tokens only
        assert shapes.count((sum(own),)) == 2
        assert shapes.count((shared,)) <= 1
        assert all(shape[-1] <= sum(own) for shape in shapes if shape != (shared,))
    for out in outs:
        for row, prompt in enumerate(prompts):  # and the vectors are still those of a plain forward
            want = _reference(model, builder, prompt, out.generated_ids[row], out.forced[row])
            assert torch.allclose(out.embeddings[row], want, atol=1e-5)


def test_a_row_that_writes_the_closing_text_gets_the_token_next(setup, backend):
    """The closing text commits a row: the token is fed after it, the row is not forced."""
    model, _, builder = setup
    prompts = [builder.reasoning_prompt_ids(q) for q in QUERIES]
    free = _decode(model, builder, prompts, budget=12, backend=backend)
    # take each row's own third greedy token as a one-token "closing text": rows end right after it
    # (or at its first earlier occurrence) instead of running to the budget
    closing = [free.generated_ids[0][2]]
    out = _decode(model, builder, prompts, budget=12, closing_ids=closing, backend=backend)
    assert out.generated_ids[0] == free.generated_ids[0][: free.generated_ids[0].index(closing[0]) + 1]
    assert not out.forced[0] and free.forced[0]
    for row, prompt in enumerate(prompts):
        ids = out.generated_ids[row]
        if closing[0] in free.generated_ids[row]:
            assert ids[-1] == closing[0] and not out.forced[row]
            expected = _reference(model, builder, prompt, [*ids, builder.embed_id], forced=False)
        else:  # never wrote it: forced as before
            assert out.forced[row] and ids == free.generated_ids[row]
            expected = _reference(model, builder, prompt, ids, forced=True)
        assert torch.nn.functional.cosine_similarity(out.embeddings[row], expected, dim=0) > 0.99999


def test_banned_next_tokens_finds_every_continuation_of_the_last_tokens():
    from search_r3.decoding import banned_next_tokens

    assert banned_next_tokens([5, 6, 7, 5, 6], 3) == [7]
    assert banned_next_tokens([5, 6, 5, 7, 5], 2) == [6, 7]
    assert banned_next_tokens([5, 6], 3) == [] and banned_next_tokens([5, 6, 5], 0) == []


def test_no_repeat_ngram_keeps_reasoning_free_of_repeats(setup, backend):
    model, _, builder = setup
    prompts = [builder.reasoning_prompt_ids(q) for q in QUERIES]
    plain = _decode(model, builder, prompts, budget=24, backend=backend)

    def repeats(ids, n=2):
        grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
        return len(grams) - len(set(grams))

    assert any(repeats(ids) for ids in plain.generated_ids)  # the plain model does loop
    out = _decode(model, builder, prompts, budget=24, no_repeat_ngram_size=2, backend=backend)
    for row, prompt in enumerate(prompts):
        ids = out.generated_ids[row]
        assert repeats(ids) == 0
        expected = _reference(model, builder, prompt, ids, forced=out.forced[row])
        assert torch.nn.functional.cosine_similarity(out.embeddings[row], expected, dim=0) > 0.99999


def test_llama_layout_models_decode_on_slots(setup):
    from search_r3.decoding import TransformersBackend, decode_backend
    from search_r3.slot_decoder import SlotDecoder

    model, _, _ = setup
    assert isinstance(decode_backend(model, 0), SlotDecoder)
    assert isinstance(decode_backend(model, 0, "transformers"), TransformersBackend)
    with pytest.raises(ValueError, match="backend must be"):
        decode_backend(model, 0, "vllm")


def test_backends_agree(setup):
    model, _, builder = setup
    prompts = builder.build(QUERIES, "reasoning")
    slots, plain = (_decode(model, builder, prompts, 10, backend=b) for b in ("slots", "transformers"))
    assert slots.generated_ids == plain.generated_ids and slots.forced == plain.forced
    assert torch.allclose(slots.embeddings, plain.embeddings, atol=1e-5)


def test_slots_grow_while_rows_decode(setup, monkeypatch):
    """A cache that starts small and grows (rows and positions) while rows decode changes nothing."""
    from search_r3 import slot_decoder

    model, _, builder = setup
    prompts = builder.build(QUERIES, "reasoning")
    want = _decode(model, builder, prompts, 10, backend="transformers")
    monkeypatch.setattr(slot_decoder, "LENGTH_STEP", 4)
    decoder = slot_decoder.SlotDecoder(model)
    decoder.set_prefix(prompts[0][: shared_prefix_length(prompts)])
    hidden = [decoder.admit([prompts[0]])]  # one slot at first; the others arrive later
    for prompt in prompts[1:]:
        hidden.append(decoder.admit([prompt]))
        assert decoder.keys[0].shape[2] % 4 == 0 and decoder.keys[0].shape[0] >= decoder.size
    last = torch.cat(hidden)
    generated = [[] for _ in prompts]
    with torch.inference_mode():
        for _ in range(10):
            tokens = decoder.logits(last).argmax(-1).tolist()
            for row, token in enumerate(tokens):
                generated[row].append(token)
            last = decoder.step(tokens)
    assert generated == want.generated_ids
    assert decoder.lengths == [len(p) + 10 for p in prompts]
    with torch.inference_mode():
        decoder.keep([4, 1])  # rows leave: the others move down, in order
        assert decoder.lengths == [len(prompts[4]) + 10, len(prompts[1]) + 10]
        last = decoder.step(decoder.logits(last[[4, 1]]).argmax(-1).tolist())
        tokens = decoder.logits(last).argmax(-1).tolist()
    longer = _decode(model, builder, [prompts[4], prompts[1]], 12, backend="transformers")
    assert [ids[11] for ids in longer.generated_ids] == tokens  # their caches moved intact


def test_finished_rows_make_room_for_the_next_prompts(setup, backend, monkeypatch):
    model, _, builder = setup
    prompts = builder.build(QUERIES, "reasoning")
    biased, _, step = biased_copy(model, prompts, builder.embed_id)
    budget = step + 4
    everything = _decode(biased, builder, prompts, budget, backend=backend)
    rows_fed = []
    plain_step = Decoder.step

    def counting_step(self):
        rows_fed.append(len(self.rows))
        return plain_step(self)

    monkeypatch.setattr(Decoder, "step", counting_step)
    done = []
    two = _decode(biased, builder, prompts, budget, backend=backend, max_batch_size=2, on_done=done.append)
    assert max(rows_fed) == 2 and sum(done) == len(prompts)
    assert two.generated_ids == everything.generated_ids and two.forced == everything.forced
    assert torch.allclose(two.embeddings, everything.embeddings, atol=1e-5)
    with pytest.raises(ValueError, match="max_batch_size"):
        _decode(biased, builder, prompts, budget, backend=backend, max_batch_size=0)


def test_fill_order_moves_only_the_rows_past_the_end():
    assert fill_order(5, [1]) == [0, 4, 2, 3]
    assert fill_order(5, [4]) == [0, 1, 2, 3]  # the last row leaves: nothing moves
    assert fill_order(6, [0, 2]) == [5, 1, 4, 3]
    assert fill_order(3, [0, 1, 2]) == []
    for size in range(1, 7):  # every row that stays is kept once, whatever leaves
        for leaving in ([0], [size - 1], list(range(0, size, 2))):
            order = fill_order(size, leaving)
            assert sorted(order) == [j for j in range(size) if j not in leaving]


def test_prompts_join_the_running_rows_in_chunks(setup, monkeypatch):
    """On the slots backend a prompt is fed in the step's forward, beside the decoding rows'
    tokens, in chunks of PREFILL_CHUNK tokens: same tokens and vectors, no forward of its own."""
    model, _, builder = setup
    prompts = builder.build(QUERIES, "reasoning")
    whole = _decode(model, builder, prompts, 12, backend="slots", max_batch_size=2)
    steps: list[tuple[list[bool], list[int]]] = []  # per mixed step: rows fed their prompt; what is left
    mixed_step = Decoder._speculative_step

    def spy(self, feed, drafts):
        left = [len(self._prefill[id(row)]) for row in self.rows if id(row) in self._prefill]
        steps.append(([token is None for token in feed], left))
        return mixed_step(self, feed, drafts)

    def no_admit(self, prompts):
        raise AssertionError("a prompt ran a forward of its own")

    monkeypatch.setattr(decoding, "PREFILL_CHUNK", 3)
    monkeypatch.setattr(Decoder, "_speculative_step", spy)
    monkeypatch.setattr(SlotDecoder, "admit", no_admit)
    chunked = _decode(model, builder, prompts, 12, backend="slots", max_batch_size=2)
    assert chunked.generated_ids == whole.generated_ids and chunked.forced == whole.forced
    assert torch.allclose(chunked.embeddings, whole.embeddings, atol=1e-5)
    for row, prompt in enumerate(prompts):
        want = _reference(model, builder, prompt, chunked.generated_ids[row], chunked.forced[row])
        assert torch.allclose(chunked.embeddings[row], want, atol=1e-5)
    assert any(n > 3 for _, left in steps for n in left)  # a prompt took several steps
    assert any(any(filling) and not all(filling) for filling, _ in steps)  # beside a decoding row
