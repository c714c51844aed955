"""The batch-1 decoding levers of the slots backend give the tokens of the plain float32 path.

``CertifiedArgmax`` picks the greedy token from a bfloat16 copy of the LM head and checks the
close calls in float32; the one-row step computes the same layer as the generic forward in fewer
operations. Both are checked against plain float32 arithmetic on cases built to catch a shortcut.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from search_r3 import SearchR3Settings
from search_r3.head_argmax import CertifiedArgmax
from search_r3.prompts import PromptBuilder


def _head(vocab: int = 4000, dim: int = 96, seed: int = 0, bias: bool = True):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, dim, generator=generator) * 0.2
    b = torch.randn(vocab, generator=generator) * 0.1 if bias else None
    return weight, b, generator


def _checker(weight, bias):
    greedy = CertifiedArgmax.build(weight, bias)
    if greedy is None:
        pytest.skip("this CPU or torch build has no oneDNN bfloat16 products")
    return greedy


def _true_argmax(weight, bias, hidden):
    logits = hidden.double() @ weight.double().T
    return (logits + bias.double() if bias is not None else logits).argmax(dim=-1).tolist()


@pytest.mark.parametrize("bias", [True, False])
def test_close_calls_are_settled_in_float32(bias):
    """A token that beats the best one by less than bfloat16 can resolve still wins, as in float32."""
    naive_wrong = 0
    for seed in range(16):
        weight, b, generator = _head(seed=seed, bias=bias)
        hidden = torch.randn(1, weight.shape[1], generator=generator) * 3
        logits = hidden[0] @ weight.T + (b if b is not None else 0)
        best = int(logits.argmax())
        rival = (best + 1 + seed * 37) % weight.shape[0]
        # the rival's row: the best row moved along the hidden state so that its logit is higher
        # by 1e-4 of the best logit, far below bfloat16's resolution (about 4e-3), far above float32's
        target = float(logits[best]) * (1 + 1e-4 * (1 if logits[best] > 0 else -1))
        row = weight[best].clone()
        now = float(hidden[0] @ row) + (float(b[rival]) if b is not None else 0.0)
        weight[rival] = row + hidden[0] * (target - now) / float(hidden[0] @ hidden[0])
        assert _true_argmax(weight, b, hidden) == [rival]
        naive = (hidden.bfloat16() @ weight.bfloat16().T).float()
        naive_wrong += int((naive + b if b is not None else naive).argmax()) != rival
        assert _checker(weight, b).pick(hidden) == [rival]
    assert naive_wrong  # reading the bfloat16 copy alone gets some of them wrong


def test_banned_tokens_are_never_picked():
    weight, b, generator = _head()
    hidden = torch.randn(8, weight.shape[1], generator=generator)
    first = _true_argmax(weight, b, hidden)
    banned = [[token] for token in first]
    logits = (hidden.double() @ weight.double().T + b.double()).clone()
    logits[torch.arange(8), torch.tensor(first)] = float("-inf")
    assert _checker(weight, b).pick(hidden, banned) == logits.argmax(dim=-1).tolist()


def test_top_tokens_first_and_every_token_where_they_cannot_settle(monkeypatch):
    """Rows with a clear lead are settled among their top ``TOP_K`` tokens; rows of near-flat
    logits (where a token outside them may still win) get a bound for every token. Both give
    the float32 argmax, banned tokens excluded."""
    weight, _, generator = _head(bias=False)
    # 40 near-copies of one row (more than TOP_K): the rows of hidden along it have 40 logits
    # within bfloat16's reach of each other
    weight[100:140] = weight[100] + torch.randn(40, weight.shape[1], generator=generator) * 1e-4
    greedy = _checker(weight, None)
    hidden = torch.randn(8, weight.shape[1], generator=generator) * 3  # a clear lead
    hidden[4:] += weight[100] * 40
    banned = [[], [5], [], [], [], [7, 9], [], []]
    settled_fully = []
    pick_all = greedy._pick_all

    def spy(approx, rows_hidden, scale, rows_banned):
        settled_fully.append(rows_hidden.shape[0])
        return pick_all(approx, rows_hidden, scale, rows_banned)

    monkeypatch.setattr(greedy, "_pick_all", spy)
    logits = hidden.double() @ weight.double().T
    for i, ids in enumerate(banned):
        logits[i, ids] = float("-inf")
    assert greedy.pick(hidden, banned) == logits.argmax(dim=-1).tolist()
    assert settled_fully == [4]  # the four rows along the copies, together
    banned_best = [[int(logits[i].argmax())] for i in range(8)]
    logits[torch.arange(8), torch.tensor([b[0] for b in banned_best])] = float("-inf")
    assert greedy.pick(hidden[:4], banned_best[:4]) == logits[:4].argmax(dim=-1).tolist()
    assert settled_fully == [4]  # the clear rows stay on the top tokens with their best banned


def test_bad_numbers_fall_back_to_the_full_logits():
    weight, b, generator = _head()
    hidden = torch.randn(2, weight.shape[1], generator=generator)
    hidden[1, 0] = float("nan")
    picks = _checker(weight, b).pick(hidden)
    full = hidden @ weight.T + b
    assert picks == full.argmax(dim=-1).tolist()


def test_only_float32_heads_get_a_copy():
    weight, _, _ = _head()
    assert CertifiedArgmax.build(weight.bfloat16(), None) is None
    assert CertifiedArgmax.build(weight[:, 0], None) is None


@pytest.fixture(scope="module")
def model_and_prompt(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # varied greedy tokens (see test_decoding)
        for weight in model.model.layers.parameters():
            if weight.dim() == 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.1)
    builder = PromptBuilder(AutoTokenizer.from_pretrained(tiny_model_dir), SearchR3Settings())
    return model, builder.reasoning_prompt_ids("how do plants turn light into sugar?")


def test_one_row_step_equals_the_generic_forward(model_and_prompt, monkeypatch):
    """Token by token, the one-row step gives the hidden states and tokens of the generic forward,
    across cache growth (a small length step makes the cache grow while decoding)."""
    from search_r3 import slot_decoder

    model, prompt = model_and_prompt
    monkeypatch.setattr(slot_decoder, "LENGTH_STEP", 8)
    lean, generic = slot_decoder.SlotDecoder(model), slot_decoder.SlotDecoder(model)
    weights = lean.w
    assert weights is generic.w and weights.lean  # both tiny layouts take the one-row step
    calls = []
    generic_forward = slot_decoder.SlotDecoder._forward
    monkeypatch.setattr(lean, "_forward", lambda *a: calls.append(a) or generic_forward(lean, *a))
    with torch.inference_mode():
        last = [lean.admit([prompt]), generic.admit([prompt])]
        for _ in range(20):
            picks = [lean.greedy(last[0], [[]]), generic.logits(last[1]).argmax(-1).tolist()]
            assert picks[0] == picks[1]
            last[0] = lean.step(picks[0])
            weights.lean = False
            try:
                last[1] = generic.step(picks[1])
            finally:
                weights.lean = True
            assert torch.allclose(last[0], last[1], atol=1e-5, rtol=1e-4)
    assert len(calls) == 1  # the prompt only: every step took the one-row path
    assert lean.lengths == generic.lengths == [len(prompt) + 20]


def test_one_row_step_only_for_the_formulas_it_computes(model_and_prompt):
    """The one-row step is taken in float32 and bfloat16, but not for a model whose norm computes
    something else (here Gemma's ``1 + weight`` scaling)."""
    import copy

    from search_r3 import slot_decoder

    model, _ = model_and_prompt
    half = copy.deepcopy(model).to(torch.bfloat16)
    assert slot_decoder.SlotDecoder(half).w.lean
    other = copy.deepcopy(model)
    norm = other.model.layers[0].post_attention_layernorm
    plain = type(norm).forward
    unit = lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)  # noqa: E731
    norm.forward = lambda x: plain(norm, x) + unit(x)  # weight * x̂ + x̂ = (1 + weight) * x̂
    other.model.layers[0].post_attention_layernorm = norm
    assert not slot_decoder.SlotDecoder(other).w.lean
