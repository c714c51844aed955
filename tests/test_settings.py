"""Settings stored with the model: round trips, unknown keys kept, defaults when absent."""

from __future__ import annotations

import logging

import pytest
from transformers import LlamaConfig

from search_r3 import EMBED_TOKEN, InvalidInputError, SearchR3Settings
from search_r3.settings import CONFIG_KEY, DEFAULT_QUERY_INSTRUCTION


def test_defaults_are_the_published_prompt():
    settings = SearchR3Settings()
    assert settings.embed_token == EMBED_TOKEN == "<|embed_token|>"
    assert settings.query_instruction == DEFAULT_QUERY_INSTRUCTION == "Please represent user queries."
    assert settings.closing_text.strip() == "The embedding is"
    assert settings.normalize is True


def test_dict_round_trip():
    settings = SearchR3Settings(max_length=256, max_reasoning_tokens=32, document_instruction="Doc:")
    assert SearchR3Settings.from_dict(settings.to_dict()) == settings


def test_unknown_keys_are_kept_in_extra():
    settings = SearchR3Settings.from_dict({"max_length": 99, "future_option": [1, 2], "extra": {"a": 1}})
    assert settings.max_length == 99
    assert settings.extra == {"a": 1, "future_option": [1, 2]}
    again = SearchR3Settings.from_dict(settings.to_dict())
    assert again.extra == settings.extra and again.max_length == 99


def test_none_or_empty_gives_defaults():
    assert SearchR3Settings.from_dict(None) == SearchR3Settings() == SearchR3Settings.from_dict({})


def test_model_config_round_trip(tmp_path):
    config = LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    SearchR3Settings(max_length=77, extra={"note": "x"}).write_to_model_config(config)
    config.save_pretrained(tmp_path)
    loaded = LlamaConfig.from_pretrained(tmp_path)
    assert getattr(loaded, CONFIG_KEY)["max_length"] == 77
    settings = SearchR3Settings.from_model_config(loaded)
    assert settings.max_length == 77 and settings.extra == {"note": "x"}


def test_config_without_settings_uses_defaults(caplog):
    config = LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    with caplog.at_level(logging.INFO, logger="search_r3.settings"):
        assert SearchR3Settings.from_model_config(config) == SearchR3Settings()
    assert "published" in caplog.text


def test_collapse_whitespace_must_be_a_boolean():
    assert SearchR3Settings.from_dict({"collapse_whitespace": False}).collapse_whitespace is False
    with pytest.raises(InvalidInputError, match="collapse_whitespace must be true or false"):
        SearchR3Settings.from_dict({"collapse_whitespace": "no"})
