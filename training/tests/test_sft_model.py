"""Collator layout and the training forward passes, checked against the inference code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from search_r3 import ReasoningEmbeddings
from search_r3_train.arguments import ModelArguments
from search_r3_train.collator import SFTCollator, text_key
from search_r3_train.data import read_jsonl
from search_r3_train.losses import IGNORE_INDEX
from search_r3_train.modeling import forward_documents, forward_queries, load_for_training


@pytest.fixture(scope="module")
def batch_and_model(tiny_llama_dir: Path, sft_jsonl: Path):
    loaded = load_for_training(ModelArguments(model_name_or_path=str(tiny_llama_dir)), kl_reference=False)
    collator = SFTCollator(loaded.prompts, negatives_per_query=2, pad_id=loaded.pad_id, seed=0)
    examples = read_jsonl(sft_jsonl)[:3]  # the first one has reasoning
    return loaded, collator, examples, collator(examples)


def test_labels_cover_exactly_the_assistant_turn(batch_and_model):
    loaded, _collator, examples, batch = batch_and_model
    prompts = loaded.prompts
    expected = [prompts.assistant_ids(examples[0].reasoning), prompts.closing_ids, prompts.closing_ids]
    for row, turn in enumerate(expected):
        labels = batch["query_labels"][row]
        assert labels[labels != IGNORE_INDEX].tolist() == turn
        assert int(batch["query_input_ids"][row, -1]) == loaded.embed_id  # left padding
    # the reasoning example uses the reasoning prompt, the others the direct query prompt
    ids0 = batch["query_input_ids"][0][batch["query_attention_mask"][0].bool()].tolist()
    assert ids0 == prompts.reasoning_prompt_ids(examples[0].query) + expected[0]
    ids1 = batch["query_input_ids"][1][batch["query_attention_mask"][1].bool()].tolist()
    assert ids1 == prompts.query_ids(examples[1].query)


def test_documents_come_in_groups_of_positive_then_negatives(batch_and_model):
    _, collator, examples, batch = batch_and_model
    assert batch["doc_input_ids"].shape[0] == 3 * collator.group_size
    keys = batch["doc_keys"].view(3, collator.group_size)
    for row, example in enumerate(examples):
        assert int(keys[row, 0]) in {text_key(t) for t in example.pos}
        assert {int(k) for k in keys[row, 1:]} <= {text_key(t) for t in example.neg}
        assert set(batch["query_positive_keys"][row].tolist()) - {-1} == {text_key(t) for t in example.pos}


def test_negatives_fall_back_to_other_positives_when_an_example_has_none(batch_and_model):
    loaded, _, examples, _ = batch_and_model
    bare = [type(e)(e.query, e.pos, []) for e in examples]
    collator = SFTCollator(loaded.prompts, negatives_per_query=3, pad_id=loaded.pad_id)
    keys = collator(bare)["doc_keys"].view(3, 4)
    for row, _example in enumerate(bare):
        others = {text_key(t) for j, e in enumerate(bare) if j != row for t in e.pos}
        assert {int(k) for k in keys[row, 1:]} <= others


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_training_embeddings_match_inference(arch: str, request: pytest.FixtureRequest, sft_jsonl: Path):
    model_dir = request.getfixturevalue(f"tiny_{arch}_dir")
    loaded = load_for_training(ModelArguments(model_name_or_path=str(model_dir)), kl_reference=False)
    loaded.model.eval()
    examples = read_jsonl(sft_jsonl)[1:4]  # direct queries
    batch = SFTCollator(loaded.prompts, 1, loaded.pad_id)(examples)
    with torch.no_grad():
        query = forward_queries(
            loaded.model,
            batch["query_input_ids"],
            batch["query_attention_mask"],
            batch["query_labels"],
            loaded.embed_id,
            True,
        )
        docs = forward_documents(
            loaded.model, batch["doc_input_ids"], batch["doc_attention_mask"], loaded.embed_id, True
        )
        full = loaded.model(
            input_ids=batch["query_input_ids"], attention_mask=batch["query_attention_mask"]
        ).logits
    inference = ReasoningEmbeddings.from_pretrained(model_dir, device="cpu")
    expected_q = inference.encode_queries([e.query for e in examples], reasoning=False).embeddings
    np.testing.assert_allclose(query.embeddings.numpy(), expected_q, atol=2e-4)
    rows = batch["doc_input_ids"]
    expected_d = inference.embed_prompt_ids(
        [r[batch["doc_attention_mask"][i].bool()].tolist() for i, r in enumerate(rows)]
    )
    np.testing.assert_allclose(docs.numpy(), expected_d.numpy(), atol=2e-4)
    # the kept logits are the full model's at the positions predicting the assistant turn
    span = query.targets.shape[1]
    width = batch["query_input_ids"].shape[1]
    torch.testing.assert_close(query.logits, full[:, width - span - 1 : width - 1], atol=1e-4, rtol=1e-4)


def test_lora_trains_the_embed_token_rows(tiny_llama_dir: Path):
    loaded = load_for_training(
        ModelArguments(model_name_or_path=str(tiny_llama_dir), use_lora=True, lora_r=4), kl_reference=True
    )
    assert loaded.reference is None  # LoRA: the base is the adapter switched off, no copy
    trainable = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert any("trainable_tokens_delta" in n for n in trainable)
    assert any("lora_A" in n for n in trainable)
    # only LoRA matrices and the token's row (a delta) train, never the whole embedding matrix
    assert all("lora_" in n or "trainable_tokens_delta" in n for n in trainable)


def test_untied_model_gets_input_and_output_rows(tiny_llama_dir: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model.config.tie_word_embeddings = False
    untied = AutoModelForCausalLM.from_config(model.config)
    untied.load_state_dict(model.state_dict())
    untied.lm_head.weight.data = model.lm_head.weight.data.clone()
    untied.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path)
    loaded = load_for_training(ModelArguments(model_name_or_path=str(tmp_path), use_lora=True), False)
    deltas = [n for n, p in loaded.model.named_parameters() if "trainable_tokens_delta" in n]
    assert any("embed_tokens" in n for n in deltas) and any("lm_head" in n for n in deltas)


def test_full_fine_tuning_keeps_a_frozen_reference(tiny_llama_dir: Path):
    loaded = load_for_training(ModelArguments(model_name_or_path=str(tiny_llama_dir)), kl_reference=True)
    assert loaded.reference is not None
    assert not any(p.requires_grad for p in loaded.reference.parameters())
    assert all(p.requires_grad for p in loaded.model.parameters())


def test_plain_lm_gets_the_embed_token(tmp_path: Path, tokenizer_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_for_training(ModelArguments(model_name_or_path=str(tmp_path)), False)
    assert loaded.token_added
    assert loaded.model.get_input_embeddings().weight.shape[0] > loaded.embed_id


def test_train_top_layers_freezes_everything_below(tiny_llama_dir: Path):
    args = ModelArguments(model_name_or_path=str(tiny_llama_dir), train_top_layers=1)
    loaded = load_for_training(args, kl_reference=False)
    trainable = {n for n, p in loaded.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trainable)
    assert any(n.startswith("model.layers.1.") for n in trainable)
    with pytest.raises(ValueError, match="between 1 and 2"):
        load_for_training(ModelArguments(model_name_or_path=str(tiny_llama_dir), train_top_layers=5), False)


def test_training_from_an_adapter_folder_starts_from_the_merged_model(
    tiny_llama_dir: Path, random_adapter, tmp_path: Path
):
    from search_r3 import ReasoningEmbeddings
    from search_r3.pooling import backbone_of, embed_forward, pad_batch

    first = random_adapter(tiny_llama_dir, tmp_path / "stage1", seed=4, r=2, tokens=True)
    loaded = load_for_training(
        ModelArguments(model_name_or_path=str(first), use_lora=True, lora_r=2), kl_reference=False
    )
    # the new adapter's recorded base is the stage-1 adapter (so it loads with both merged) ...
    assert loaded.model.peft_config["default"].base_model_name_or_path == str(first.resolve())
    # ... and training starts from stage 1's weights: a fresh LoRA (B = 0) changes nothing yet
    merged = ReasoningEmbeddings.from_pretrained(first, device="cpu")
    ids, mask = pad_batch([merged.prompts.document_ids("a wing in a slipstream")], pad_id=0)
    with torch.no_grad():
        got = embed_forward(backbone_of(loaded.model), ids, mask, loaded.embed_id)
        want = embed_forward(backbone_of(merged.model), ids, mask, merged.embed_id)
        base = embed_forward(
            backbone_of(ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu").model),
            ids,
            mask,
            merged.embed_id,
        )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, base, atol=1e-3)
