"""The sentence-transformers module: same vectors as ReasoningEmbeddings, save/load round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from search_r3 import ReasoningEmbeddings
from search_r3.st_module import SearchR3Module, encode_queries, load_sentence_transformer

QUERIES = ["what is the lift of a wing", "how does heat flow through composite slabs at high temperature"]
DOCS = ["The lift of a wing depends on its angle of attack.", "Heat conduction in slabs."]


@pytest.fixture(scope="module")
def st_model(tiny_llama_dir: Path):
    return load_sentence_transformer(str(tiny_llama_dir), device="cpu", max_reasoning_tokens=4)


@pytest.fixture(scope="module")
def embeddings(tiny_llama_dir: Path) -> ReasoningEmbeddings:
    return ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_reasoning_tokens=4)


def test_same_vectors_as_reasoning_embeddings(st_model, embeddings) -> None:
    np.testing.assert_array_equal(st_model.encode_document(DOCS), embeddings.encode_documents(DOCS))
    np.testing.assert_array_equal(
        st_model.encode_query(QUERIES, reasoning=False),
        embeddings.encode_queries(QUERIES, reasoning=False).embeddings,
    )
    np.testing.assert_array_equal(
        st_model.encode_query(QUERIES), embeddings.encode_queries(QUERIES).embeddings
    )


def test_query_reasons_and_document_does_not(st_model) -> None:
    module: SearchR3Module = st_model[0]
    module.last_reasoning = ["sentinel"]
    st_model.encode_document(DOCS)
    assert module.last_reasoning == ["sentinel"]  # no generation for documents
    st_model.encode_query(QUERIES[:1], reasoning=False)
    assert module.last_reasoning == ["sentinel"]
    st_model.encode_query(QUERIES[:1])
    assert module.last_reasoning != ["sentinel"] and len(module.last_reasoning) == 1
    # reasoning changes the vector (the prompt and the generated tokens differ)
    on, off = st_model.encode_query(QUERIES[:1]), st_model.encode_query(QUERIES[:1], reasoning=False)
    assert not np.allclose(on, off)


def test_reasoning_text_and_budget_are_read_back(st_model, embeddings) -> None:
    got = encode_queries(st_model, QUERIES[:1], max_reasoning_tokens=5, do_sample=True, seed=7)
    want = embeddings.encode_queries(QUERIES[:1], max_reasoning_tokens=5, do_sample=True, seed=7)
    assert got.reasoning == want.reasoning and got.reasoning[0].strip()  # sampled text is not blank
    assert got.generated_tokens == want.generated_tokens and got.generated_tokens[0] <= 5
    np.testing.assert_array_equal(got.forced, want.forced)
    np.testing.assert_array_equal(got.embeddings, want.embeddings)
    short = encode_queries(st_model, QUERIES, max_reasoning_tokens=2)
    assert all(n <= 2 for n in short.generated_tokens) and len(short.reasoning) == 2


def test_output_features_carry_reasoning(st_model) -> None:
    out = st_model.encode_query(QUERIES[:1], output_value=None)
    assert isinstance(out[0]["forced"].item(), bool) and out[0]["generated_tokens"].item() <= 4
    assert out[0]["reasoning"] == st_model[0].last_reasoning


def test_unknown_keyword_and_bad_input(st_model) -> None:
    with pytest.raises(ValueError, match="additional keyword"):
        st_model.encode_query(QUERIES, think_harder=True)
    with pytest.raises(ValueError, match="index 1 is empty"):
        st_model.encode_document(["fine", " "])


def test_save_and_reload(st_model, tmp_path: Path) -> None:
    module: SearchR3Module = st_model[0]
    module.reasoning_log.clear()
    module.last_reasoning = ["before save"]
    out = tmp_path / "saved"
    st_model.save(str(out))
    assert module.last_reasoning == ["before save"] and not module.reasoning_log  # no generation
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "search_r3" in config  # still the LLM's config
    assert json.loads((out / "search_r3_config.json").read_text()) == {
        "reasoning": True,
        "max_reasoning_tokens": 4,
        "default_task": "document",
    }
    expected_q, expected_d = st_model.encode_query(QUERIES), st_model.encode_document(DOCS)

    reloaded = SentenceTransformer(str(out), trust_remote_code=True, device="cpu")
    np.testing.assert_array_equal(reloaded.encode_query(QUERIES), expected_q)
    np.testing.assert_array_equal(reloaded.encode_document(DOCS), expected_d)
    no_flag = load_sentence_transformer(str(out), device="cpu")
    np.testing.assert_array_equal(no_flag.encode_query(QUERIES), expected_q)
    plain = ReasoningEmbeddings.from_pretrained(out, device="cpu", max_reasoning_tokens=4)  # plain checkpoint
    np.testing.assert_array_equal(plain.encode_queries(QUERIES).embeddings, expected_q)
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(out), device="cpu")


def test_saved_defaults_are_honoured(tiny_llama_dir: Path, tmp_path: Path) -> None:
    model = load_sentence_transformer(
        str(tiny_llama_dir), device="cpu", reasoning=False, max_reasoning_tokens=9
    )
    model.save(str(tmp_path / "m"))
    again = load_sentence_transformer(str(tmp_path / "m"), device="cpu")
    assert (again[0].reasoning, again[0].max_reasoning_tokens) == (False, 9)
    np.testing.assert_array_equal(again.encode_query(QUERIES), model.encode_query(QUERIES, reasoning=False))


def test_dimension_and_length(st_model) -> None:
    assert st_model.get_embedding_dimension() == 64
    assert st_model.max_seq_length == 512


def test_plain_folder_made_loadable_without_loading_it(
    tiny_llama_dir: Path, embeddings, tmp_path: Path
) -> None:
    import shutil

    from search_r3.st_module import write_sentence_transformers_files

    folder = tmp_path / "plain"
    shutil.copytree(tiny_llama_dir, folder)
    before = (folder / "config.json").read_text()
    write_sentence_transformers_files(folder, max_reasoning_tokens=4)
    assert (folder / "config.json").read_text() == before
    model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    assert isinstance(model[0], SearchR3Module) and model[0].max_reasoning_tokens == 4
    np.testing.assert_array_equal(model.encode_query(QUERIES), embeddings.encode_queries(QUERIES).embeddings)
    np.testing.assert_array_equal(model.encode_document(DOCS), embeddings.encode_documents(DOCS))
    with pytest.raises(FileNotFoundError, match="search-r3 model folder"):
        write_sentence_transformers_files(tmp_path / "nothing-here")


def test_init_folder_loads_with_sentence_transformer(tiny_llama_dir: Path, embeddings) -> None:
    """`search-r3 init` output is loadable as it is, and config.json stays the LM's own."""
    model = SentenceTransformer(str(tiny_llama_dir), trust_remote_code=True, device="cpu")
    np.testing.assert_array_equal(model.encode_document(DOCS), embeddings.encode_documents(DOCS))
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    assert "search_r3" in config and "model_type" in config
