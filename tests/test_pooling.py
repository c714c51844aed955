"""Read-out: base transformer only, token located by id, padding side irrelevant."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from search_r3.pooling import (
    backbone_of,
    embed_forward,
    embed_token_positions,
    is_right_padded,
    pad_batch,
    pool_embed_token,
    position_ids_from_mask,
)

EMBED = 7


def test_pad_batch_both_sides():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0, side="right")
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=9, side="left")
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_positions_ignore_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 2, 2]]


def test_is_right_padded():
    assert is_right_padded(torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert is_right_padded(torch.ones(2, 4, dtype=torch.long))
    assert not is_right_padded(torch.tensor([[1, 1, 1], [0, 1, 1]]))
    assert not is_right_padded(torch.tensor([[1, 0, 1]]))


def test_token_located_by_id_not_by_last_column():
    ids = torch.tensor([[1, EMBED, 0, 0], [0, 2, 3, EMBED], [EMBED, 5, EMBED, 0]])
    assert embed_token_positions(ids, EMBED).tolist() == [1, 3, 2]  # the last one when repeated
    hidden = torch.arange(3 * 4 * 2, dtype=torch.float32).reshape(3, 4, 2)
    pooled = pool_embed_token(hidden, ids, EMBED, normalize=False)
    assert torch.equal(pooled, torch.stack([hidden[0, 1], hidden[1, 3], hidden[2, 2]]))
    normed = pool_embed_token(hidden, ids, EMBED, normalize=True)
    assert torch.allclose(normed.norm(dim=-1), torch.ones(3))


def test_missing_token_is_an_error():
    with pytest.raises(ValueError, match=r"Rows \[1\] contain no embed token"):
        embed_token_positions(torch.tensor([[EMBED, 1], [1, 2]]), EMBED)


@pytest.fixture(scope="module")
def causal_lm(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


def test_backbone_is_the_base_transformer(causal_lm):
    backbone = backbone_of(causal_lm)
    assert backbone is causal_lm.model
    assert causal_lm.get_output_embeddings() not in set(backbone.modules())


def test_backbone_of_peft_model(causal_lm):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        AutoModelForCausalLM.from_config(causal_lm.config), LoraConfig(r=2, target_modules=["q_proj"])
    )
    backbone = backbone_of(peft_model)
    assert backbone is peft_model.get_base_model().model


@pytest.mark.parametrize("side", ["left", "right"])
def test_embed_forward_matches_the_full_model_hidden_states(causal_lm, side):
    embed_id = causal_lm.config.vocab_size - 1  # any id works for the read-out itself
    seqs = [[5, 6, 7, 8, 9, 10, embed_id], [11, 12, embed_id], [13, embed_id, 14, 15]]
    ids, mask = pad_batch(seqs, pad_id=0, side=side)
    with torch.no_grad():
        got = embed_forward(backbone_of(causal_lm), ids, mask, embed_id, normalize=False)
        for row, seq in enumerate(seqs):
            alone = torch.tensor([seq])
            hidden = causal_lm(input_ids=alone, output_hidden_states=True).hidden_states[-1][0]
            want = hidden[seq.index(embed_id)]
            assert torch.allclose(got[row], want, atol=1e-5), (side, row)


def test_embed_forward_keeps_gradients(causal_lm):
    ids, mask = pad_batch([[3, 4, 5]], pad_id=0)
    out = embed_forward(backbone_of(causal_lm), ids, mask, embed_id=5)
    assert out.requires_grad
    out.sum().backward()
    assert causal_lm.model.layers[0].self_attn.q_proj.weight.grad is not None
    causal_lm.zero_grad(set_to_none=True)
