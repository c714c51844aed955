"""``init_model``: embed token added, settings in config.json, safetensors, loadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from search_r3 import EMBED_TOKEN, ReasoningEmbeddings, SearchR3Settings, init_model
from search_r3.init_model import add_embed_token


def make_base(tokenizer_dir: Path, folder: Path, spare_rows: int = 0, chat_template: bool = True) -> Path:
    """A tiny random Llama base model (no embed token) with the real tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not chat_template:
        tokenizer.chat_template = None
    config = LlamaConfig(
        vocab_size=len(tokenizer) + spare_rows,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def base(tokenizer_dir, tmp_path_factory):
    return make_base(tokenizer_dir, tmp_path_factory.mktemp("base") / "base")


def test_round_trip(base, tmp_path):
    settings = SearchR3Settings(max_length=128, document_instruction="Represent the passage.")
    out = init_model(base, tmp_path / "r3", settings=settings)
    stored = json.loads((out / "config.json").read_text())["search_r3"]
    assert stored == settings.to_dict()
    assert (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert EMBED_TOKEN in tokenizer.all_special_tokens
    embed_id = tokenizer.convert_tokens_to_ids(EMBED_TOKEN)
    assert tokenizer(EMBED_TOKEN, add_special_tokens=False)["input_ids"] == [embed_id]

    emb = ReasoningEmbeddings.from_pretrained(out, device="cpu")
    assert emb.settings == settings and emb.max_length == 128 and emb.embed_id == embed_id
    assert emb.encode_documents(["a short text"]).shape == (1, 32)


def test_new_row_is_the_mean_of_the_old_rows(base, tmp_path):
    out = init_model(base, tmp_path / "r3")
    old = load_file(base / "model.safetensors")["model.embed_tokens.weight"]
    new = load_file(out / "model.safetensors")["model.embed_tokens.weight"]
    assert new.shape[0] == old.shape[0] + 1
    assert torch.equal(new[:-1], old)
    assert torch.allclose(new[-1], old.mean(dim=0), atol=1e-6)


def test_spare_rows_are_used_without_resizing(tokenizer_dir, tmp_path):
    base = make_base(tokenizer_dir, tmp_path / "base", spare_rows=8)
    rows = load_file(base / "model.safetensors")["model.embed_tokens.weight"].shape[0]
    out = init_model(base, tmp_path / "r3")
    assert load_file(out / "model.safetensors")["model.embed_tokens.weight"].shape[0] == rows
    assert AutoTokenizer.from_pretrained(out).convert_tokens_to_ids(EMBED_TOKEN) < rows


def test_init_twice_adds_nothing(base, tmp_path):
    once = init_model(base, tmp_path / "once")
    twice = init_model(once, tmp_path / "twice")
    a, b = AutoTokenizer.from_pretrained(once), AutoTokenizer.from_pretrained(twice)
    assert len(a) == len(b)
    assert a.convert_tokens_to_ids(EMBED_TOKEN) == b.convert_tokens_to_ids(EMBED_TOKEN)
    assert b.all_special_tokens.count(EMBED_TOKEN) == 1


def test_pad_token_is_set(base, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.pad_token = None
    no_pad = tmp_path / "no-pad"
    AutoModelForCausalLM.from_pretrained(base).save_pretrained(no_pad)
    tokenizer.save_pretrained(no_pad)
    out = init_model(no_pad, tmp_path / "r3")
    restored = AutoTokenizer.from_pretrained(out)
    assert restored.pad_token == restored.eos_token


def test_base_without_chat_template(tokenizer_dir, tmp_path):
    base = make_base(tokenizer_dir, tmp_path / "plain", chat_template=False)
    with pytest.raises(ValueError, match="chat_template="):
        init_model(base, tmp_path / "r3")
    template = AutoTokenizer.from_pretrained(tokenizer_dir).chat_template
    out = init_model(base, tmp_path / "r3", chat_template=template)
    assert AutoTokenizer.from_pretrained(out).chat_template == template


def test_add_embed_token_unties_nothing(base):
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    token_id = add_embed_token(model, tokenizer, EMBED_TOKEN)
    assert token_id == len(tokenizer) - 1
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert add_embed_token(model, tokenizer, EMBED_TOKEN) == token_id  # idempotent


def test_cli_init_stores_the_no_repeat_setting(base, tmp_path):
    from search_r3.cli.main import main

    assert main(["init", str(base), str(tmp_path / "r3"), "--no-repeat-ngram-size", "3"]) == 0
    assert (
        ReasoningEmbeddings.from_pretrained(tmp_path / "r3", device="cpu").settings.no_repeat_ngram_size == 3
    )
    with pytest.raises(SystemExit):
        main(["init", str(base), str(tmp_path / "bad"), "--no-repeat-ngram-size", "-1"])
