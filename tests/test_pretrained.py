"""Shipped models by short name: built once from base + adapter, cached, loadable everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search_r3 import ModelLoadError, ReasoningEmbeddings
from search_r3 import pretrained as pretrained_module
from search_r3.offline_models import OFFLINE_MODELS
from search_r3.pretrained import PRETRAINED_MODELS, PretrainedModel, is_pretrained_name, pretrained_model_path

TEXTS = ["a wing in a slipstream", "heat transfer at hypersonic speed"]
NAME = "tiny-shipped-test"


@pytest.fixture
def shipped(tiny_llama_dir: Path, random_adapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registered short name whose adapter lies in tmp_path and whose 'offline base' is the tiny model."""
    adapter = random_adapter(tiny_llama_dir, tmp_path / "adapter", seed=3, r=4, tokens=True)
    (adapter / "README.md").write_text("# tiny model card\n")
    monkeypatch.setitem(PRETRAINED_MODELS, NAME, PretrainedModel(NAME, "tiny-base", "test model", adapter))
    monkeypatch.setattr("search_r3.offline_models.offline_model_path", lambda name: tiny_llama_dir)
    monkeypatch.setenv("SEARCH_R3_CACHE", str(tmp_path / "cache"))
    return adapter


def test_short_name_builds_once_and_matches_the_adapter_on_its_base(shipped: Path, count_calls):
    builds = count_calls(pretrained_module, "_build")
    first = ReasoningEmbeddings.from_pretrained(NAME, device="cpu").encode_documents(TEXTS)
    again = ReasoningEmbeddings.from_pretrained(NAME, device="cpu").encode_documents(TEXTS)
    assert len(builds) == 1  # the second load reads the cached folder
    direct = ReasoningEmbeddings.from_pretrained(shipped, device="cpu").encode_documents(TEXTS)
    np.testing.assert_allclose(first, direct, atol=1e-5)
    np.testing.assert_allclose(again, first, atol=1e-6)
    folder = pretrained_model_path(NAME, build=False)
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    assert not list(folder.parent.glob("tmp*"))  # the staging folder is gone


def test_sentence_transformers_loads_the_short_name(shipped: Path):
    from search_r3.st_module import load_sentence_transformer

    model = load_sentence_transformer(NAME, device="cpu")
    direct = ReasoningEmbeddings.from_pretrained(NAME, device="cpu").encode_documents(TEXTS)
    np.testing.assert_allclose(model.encode_document(TEXTS), direct, atol=1e-5)


def test_a_new_adapter_gets_a_new_cache_folder(shipped: Path):
    before = pretrained_model_path(NAME, build=False)
    config = json.loads((shipped / "adapter_config.json").read_text())
    config["lora_alpha"] = 2 * config["lora_alpha"]
    (shipped / "adapter_config.json").write_text(json.dumps(config))
    assert pretrained_model_path(NAME, build=False) != before


def test_missing_adapter_names_the_fix(shipped: Path):
    (shipped / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="make model"):
        ReasoningEmbeddings.from_pretrained(NAME, device="cpu")


def test_a_local_folder_with_the_same_name_wins(
    tiny_llama_dir: Path, shipped: Path, monkeypatch, tmp_path: Path
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).symlink_to(tiny_llama_dir, target_is_directory=True)
    assert not is_pretrained_name(NAME)
    np.testing.assert_allclose(
        ReasoningEmbeddings.from_pretrained(NAME, device="cpu").encode_documents(TEXTS),
        ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu").encode_documents(TEXTS),
    )


def test_unknown_names_are_not_intercepted():
    assert not is_pretrained_name("someone/some-model")
    with pytest.raises(ModelLoadError, match="shipped models"):
        pretrained_model_path("no-such-model")


def test_shipped_adapter_is_small_and_names_a_registered_offline_base():
    for spec in PRETRAINED_MODELS.values():
        assert spec.base in OFFLINE_MODELS
        weights = spec.adapter_dir / "adapter_model.safetensors"
        assert weights.is_file(), f"{spec.name}: adapter missing from the package"
        assert weights.stat().st_size < 20_000_000
        config = json.loads((spec.adapter_dir / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["trainable_token_indices"]
        settings = json.loads((spec.adapter_dir / "config.json").read_text())["search_r3"]
        assert settings["embed_token"] == "<|embed_token|>"
        assert (spec.adapter_dir / "README.md").read_text().startswith("---")  # model card with metadata


# -- the real shipped model (off by default: `make test-slow`) -----------------------------------
@pytest.mark.slow
def test_shipped_model_reasons_stops_at_the_token_and_ranks_the_demo_corpus():
    from search_r3.demo import demo_documents, demo_queries

    emb = ReasoningEmbeddings.from_pretrained("search-r3-smollm2-135m", device="cpu")
    docs = demo_documents()
    doc_vectors = emb.encode_documents([d.full_text for d in docs])
    answers = ["tomato-yellow-leaves", "bread-staling", "python-lists-sets", "sunset-colours"]
    queries = demo_queries()
    assert len(queries) == len(answers)
    result = emb.encode_queries(queries, reasoning=True, max_reasoning_tokens=48)
    assert sum(result.forced) <= 1  # the trained model ends its reasoning by itself
    assert sum(text.startswith("Key concepts:") for text in result.reasoning) >= 3
    for reasoning in (True, False):
        vectors = result.embeddings if reasoning else emb.encode_queries(queries, reasoning=False).embeddings
        top3 = [[docs[i].id for i in np.argsort(-(doc_vectors @ v))[:3]] for v in vectors]
        hits = sum(answer in top for answer, top in zip(answers, top3, strict=True))
        assert hits >= 3, (reasoning, top3)
