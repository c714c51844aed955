"""``ReasoningEmbeddings``: one forward per batch, no LM head, stable vectors, clear errors."""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from search_r3 import (
    InvalidInputError,
    MissingEmbedTokenError,
    ModelLoadError,
    QueryEncodings,
    ReasoningEmbeddings,
)
from search_r3.devices import default_device, resolve_dtype
from search_r3.model import length_sorted_batches
from search_r3.pooling import backbone_of, embed_forward, embed_token_positions, pad_batch

DOCS = [
    "Paris is the capital and most populous city of France.",
    "Bananas are yellow.",
    "The boundary layer is the thin layer of fluid next to a surface where viscosity matters; "
    "its thickness grows along the plate and it can separate under an adverse pressure gradient.",
    "Qdrant stores vectors.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plant leaves.",
]
QUERIES = ["which city hosts the Louvre?", "how do plants make sugar from light and water?", "fruit"]


@pytest.fixture(scope="module")
def emb(tiny_llama_dir):
    """An instance of our own, which tests may change (padding side, batch size)."""
    return ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_reasoning_tokens=6)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@contextmanager
def recorded_calls(emb):
    """Record every call of the base transformer (its input ids) and of the LM head."""
    calls = {"backbone": [], "head": 0}

    def on_backbone(module, args, kwargs, output):
        calls["backbone"].append(kwargs["input_ids"].clone())

    def on_head(module, args, output):
        calls["head"] += 1

    hooks = [
        backbone_of(emb.model).register_forward_hook(on_backbone, with_kwargs=True),
        emb.model.get_output_embeddings().register_forward_hook(on_head),
    ]
    try:
        yield calls
    finally:
        for hook in hooks:
            hook.remove()


def test_documents_shape_dtype_and_norm(emb):
    vecs = emb.encode_documents(DOCS)
    assert vecs.shape == (len(DOCS), emb.embedding_dimension) == (len(DOCS), 64)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert cosines(vecs[:1], vecs[1:2])[0] < 0.9999  # different texts, different vectors


def test_one_base_forward_per_batch_and_never_the_head(emb):
    with recorded_calls(emb) as calls:
        emb.encode_documents(DOCS, batch_size=2)
        emb.encode_queries(QUERIES, reasoning=False, batch_size=2)
    assert calls["head"] == 0
    assert len(calls["backbone"]) == 3 + 2  # ceil(5 / 2) + ceil(3 / 2)


def test_batches_are_sorted_by_length(emb):
    lengths = [len(p) for p in emb.prompts.build(DOCS, "document")]
    with recorded_calls(emb) as calls:
        emb.encode_documents(DOCS, batch_size=2)
    # Each prompt ends with the embed token, so its position gives the prompt's length.
    seen = [
        sorted((embed_token_positions(ids, emb.embed_id) + 1).tolist(), reverse=True)
        for ids in calls["backbone"]
    ]
    assert seen == [sorted(lengths, reverse=True)[i : i + 2] for i in range(0, len(DOCS), 2)]
    # Each batch is only as wide as its longest row.
    assert [ids.shape[1] for ids in calls["backbone"]] == [rows[0] for rows in seen]


def test_length_sorted_batches():
    assert list(length_sorted_batches([3, 9, 1, 7, 5], 2)) == [[1, 3], [4, 0], [2]]
    assert list(length_sorted_batches([], 4)) == []
    # A token budget: rows x longest row <= 14, and a row longer than the budget goes alone.
    assert list(length_sorted_batches([3, 9, 1, 7, 5, 20], 8, max_tokens=14)) == [[5], [1], [3, 4], [0, 2]]
    assert list(length_sorted_batches([2, 2, 2, 2, 2], 3, max_tokens=100)) == [[0, 1, 2], [3, 4]]


def test_token_budget_splits_batches_without_changing_vectors(emb):
    lengths = sorted((len(p) for p in emb.prompts.build(DOCS, "document")), reverse=True)
    assert emb.max_batch_tokens == 512  # the CPU default
    with recorded_calls(emb) as calls:
        small = emb.encode_documents(DOCS, batch_size=8, max_batch_tokens=2 * lengths[0])
    assert all(ids.numel() <= 2 * lengths[0] for ids in calls["backbone"])
    assert 2 <= len(calls["backbone"]) < len(DOCS)  # split by the budget, not by the row cap
    assert cosines(small, emb.encode_documents(DOCS, batch_size=8, max_batch_tokens=10_000)).min() >= 0.99999
    emb.max_batch_tokens = lengths[0]
    try:
        with recorded_calls(emb) as calls:
            emb.encode_documents(DOCS, batch_size=8)
        assert len(calls["backbone"]) == len(DOCS)
    finally:
        emb.max_batch_tokens = None
    assert emb.max_batch_tokens == 512


def test_same_vector_alone_or_in_a_mixed_batch(emb):
    batched = emb.encode_documents(DOCS, batch_size=len(DOCS))
    for i, doc in enumerate(DOCS):
        alone = emb.encode_documents([doc])
        assert cosines(alone, batched[i : i + 1])[0] >= 0.99999
    queries = emb.encode_queries(QUERIES, batch_size=len(QUERIES))
    for i, query in enumerate(QUERIES):
        alone = emb.encode_queries([query])
        assert alone.reasoning[0] == queries.reasoning[i]
        assert cosines(alone.embeddings, queries.embeddings[i : i + 1])[0] >= 0.99999


@pytest.mark.parametrize("method", ["documents", "no-reasoning queries"])
def test_padding_side_does_not_matter(emb, method):
    texts = DOCS if method == "documents" else QUERIES + DOCS
    kind = "document" if method == "documents" else "query"

    def encode():
        if method == "documents":
            return emb.encode_documents(texts, batch_size=len(texts))
        return emb.encode_queries(texts, reasoning=False, batch_size=len(texts)).embeddings

    original = emb.tokenizer.padding_side
    try:
        emb.tokenizer.padding_side = "left"
        with_left_tokenizer = encode()
    finally:
        emb.tokenizer.padding_side = original
    ours = encode()
    # The same prompts padded on the left go through the masked path of embed_forward.
    ids, mask = pad_batch(emb.prompts.build(texts, kind), emb.pad_id, side="left")
    with torch.no_grad():
        left = embed_forward(backbone_of(emb.model), ids, mask, emb.embed_id).numpy()
    assert cosines(ours, left).min() >= 0.99999
    assert cosines(ours, with_left_tokenizer).min() >= 0.99999


def test_queries_without_reasoning(emb):
    res = emb.encode_queries(QUERIES, reasoning=False)
    direct = emb.embed_prompt_ids([emb.prompts.query_ids(q) for q in QUERIES]).numpy()
    np.testing.assert_allclose(res.embeddings, direct, atol=1e-5)
    assert res.reasoning == ["", "", ""] and not res.forced.any() and res.generated_tokens == [0, 0, 0]
    docs = emb.encode_documents(QUERIES)
    assert cosines(docs, res.embeddings).max() < 0.99999  # the query prompt is not the document prompt


def test_reasoning_queries(emb):
    res = emb.encode_queries(QUERIES, max_reasoning_tokens=4)
    assert isinstance(res, QueryEncodings) and len(res) == 3
    assert res.embeddings.shape == (3, 64) and res.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1.0, rtol=1e-5)
    assert res.forced.dtype == bool and res.forced.shape == (3,)
    assert all(0 < n <= 4 for n in res.generated_tokens)
    assert len(res.reasoning) == 3 and all(isinstance(t, str) for t in res.reasoning)
    direct = emb.encode_queries(QUERIES, reasoning=False).embeddings
    assert cosines(res.embeddings, direct).max() < 0.99999  # reasoning changed the vectors


def test_reasoning_results_stay_in_input_order(emb):
    res = emb.encode_queries(QUERIES, batch_size=1)
    for i, query in enumerate(QUERIES):
        alone = emb.encode_queries([query])
        np.testing.assert_allclose(alone.embeddings[0], res.embeddings[i], atol=1e-5)


def test_greedy_queries_are_reproducible_and_sampling_takes_a_seed(emb):
    a, b = emb.encode_queries(QUERIES), emb.encode_queries(QUERIES)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    s1 = emb.encode_queries(QUERIES, do_sample=True, seed=7)
    s2 = emb.encode_queries(QUERIES, do_sample=True, seed=7)
    assert s1.reasoning == s2.reasoning
    np.testing.assert_array_equal(s1.embeddings, s2.embeddings)


def test_framework_shapes(emb):
    docs = emb.embed_documents(DOCS[:2])
    assert isinstance(docs, list) and len(docs) == 2 and all(isinstance(x, float) for x in docs[0])
    query = emb.embed_query(QUERIES[0])
    assert isinstance(query, list) and len(query) == 64 and isinstance(query[0], float)
    np.testing.assert_allclose(query, emb.encode_queries(QUERIES[:1]).embeddings[0], atol=1e-6)


def test_reasoning_off_on_the_instance(tiny_llama_dir):
    emb = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", reasoning=False)
    with recorded_calls(emb) as calls:
        vec = emb.embed_query(QUERIES[0])
    assert calls["head"] == 0 and len(calls["backbone"]) == 1
    np.testing.assert_allclose(vec, emb.encode_queries(QUERIES[:1], reasoning=False).embeddings[0], atol=1e-6)


def test_empty_inputs(emb):
    assert emb.encode_documents([]).shape == (0, 64)
    res = emb.encode_queries([])
    assert res.embeddings.shape == (0, 64) and len(res.reasoning) == 0 and len(res.forced) == 0
    assert emb.encode_queries([], reasoning=False).embeddings.shape == (0, 64)


@pytest.mark.parametrize("bad", [[""], ["ok", "  "], [None], [3], "one string"])
def test_invalid_texts(emb, bad):
    with pytest.raises(InvalidInputError):
        emb.encode_documents(bad)
    with pytest.raises(InvalidInputError):
        emb.encode_queries(bad)


def test_truncation_warns(tiny_llama_dir, caplog):
    emb = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_length=48)
    with caplog.at_level(logging.WARNING):
        vecs = emb.encode_documents(["many words " * 200, "short"])
    assert vecs.shape == (2, 64) and np.isfinite(vecs).all()
    assert "max_length=48" in caplog.text and "from_pretrained(..., max_length=N)" in caplog.text


def test_max_length_is_capped_by_the_model(tiny_llama_dir, caplog):
    with caplog.at_level(logging.WARNING):
        emb = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_length=10**6)
    assert emb.max_length == 1024  # max_position_embeddings of the tiny models
    assert "above the model's 1024 positions" in caplog.text


def test_settings_come_from_the_folder(tiny_llama_dir, emb):
    stored = json.loads((tiny_llama_dir / "config.json").read_text())["search_r3"]
    assert emb.settings.to_dict() == stored
    assert emb.embed_id == emb.tokenizer.convert_tokens_to_ids(emb.settings.embed_token)
    assert "dim=64" in repr(emb)


# -- devices and dtypes ----------------------------------------------------------------------


def test_default_device_and_dtype(tiny_llama_dir):
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("checks the CPU-only default")
    assert default_device() == "cpu"
    assert resolve_dtype(None, "cpu") == torch.float32 == resolve_dtype("auto", "cpu")
    emb = ReasoningEmbeddings.from_pretrained(tiny_llama_dir)
    assert emb.device.type == "cpu" and emb.model.dtype == torch.float32


def test_dtype_names():
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype("float16", "cpu") == torch.float16
    assert resolve_dtype(torch.float64, "cpu") == torch.float64
    with pytest.raises(ValueError, match="Unknown dtype 'int8'"):
        resolve_dtype("int8", "cpu")


def test_bfloat16_model_gives_float32_vectors(tiny_llama_dir, emb):
    low = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", dtype="bfloat16")
    assert low.model.dtype == torch.bfloat16
    vecs = low.encode_documents(DOCS[:2])
    assert vecs.dtype == np.float32
    assert cosines(vecs, emb.encode_documents(DOCS[:2])).min() > 0.95


# -- loading errors --------------------------------------------------------------------------


@pytest.fixture()
def model_copy(tiny_llama_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, target)
    return target


def _corrupt(folder):
    (folder / "model.safetensors").write_bytes(b"not a safetensors file" * 10)


def _truncate(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _remove(*names):
    def remove(folder):
        for name in names:
            (folder / name).unlink()

    return remove


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_corrupt, "damaged file"),
        (_truncate, "damaged file"),
        (_remove("model.safetensors"), "safetensors"),
        (_remove("config.json"), "config.json"),
        (_remove("tokenizer.json", "tokenizer_config.json"), "tokenizer files"),
    ],
)
def test_broken_checkpoint(model_copy, damage, match):
    damage(model_copy)
    with pytest.raises(ModelLoadError, match=match) as info:
        ReasoningEmbeddings.from_pretrained(model_copy, device="cpu")
    assert "search-r3 init BASE OUTPUT" in str(info.value)


def test_pickle_only_folder_is_refused(model_copy):
    state = load_file(model_copy / "model.safetensors")
    torch.save(state, model_copy / "pytorch_model.bin")
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="never loads pickle"):
        ReasoningEmbeddings.from_pretrained(model_copy, device="cpu")


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(ModelLoadError, match="No model folder"):
        ReasoningEmbeddings.from_pretrained(tmp_path / "nowhere", device="cpu")
    with pytest.raises(ModelLoadError, match="No model folder"):
        ReasoningEmbeddings.from_pretrained("./not/a/folder", device="cpu")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        ReasoningEmbeddings.from_pretrained(tmp_path / "file.txt", device="cpu")


def test_tokenizer_without_embed_token(model_copy, tokenizer_dir):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, model_copy / name)
    with pytest.raises(MissingEmbedTokenError, match="search-r3 init BASE OUTPUT"):
        ReasoningEmbeddings.from_pretrained(model_copy, device="cpu")


# -- LoRA adapters ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter(tiny_llama_dir, tmp_path_factory):
    """A LoRA adapter (random, non-zero) saved as training would, and the merged model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    folder = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.save_pretrained(folder)
    merged = peft_model.merge_and_unload().eval()
    return folder, ReasoningEmbeddings(merged, tokenizer)


def test_adapter_folder_loads_onto_its_base(adapter, emb):
    folder, merged = adapter
    assert (folder / "adapter_model.safetensors").is_file()
    loaded = ReasoningEmbeddings.from_pretrained(folder, device="cpu")
    got, want = loaded.encode_documents(DOCS), merged.encode_documents(DOCS)
    assert cosines(got, want).min() >= 0.99999
    assert cosines(got, emb.encode_documents(DOCS)).min() < 0.999  # the adapter changed something


def test_adapter_without_tokenizer_uses_the_base_tokenizer(adapter, tmp_path):
    folder, merged = adapter
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(folder / name, bare / name)
    loaded = ReasoningEmbeddings.from_pretrained(bare, device="cpu")
    assert cosines(loaded.encode_documents(DOCS[:2]), merged.encode_documents(DOCS[:2])).min() >= 0.99999


def test_adapter_trained_on_an_adapter_loads_with_both_merged(adapter, random_adapter, tmp_path):
    folder, merged = adapter
    merged.save_pretrained(tmp_path / "merged")
    second = random_adapter(tmp_path / "merged", tmp_path / "second", seed=5, r=2, tokens=False)
    want = ReasoningEmbeddings.from_pretrained(second, device="cpu").encode_documents(DOCS[:3])
    config = json.loads((second / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(folder)  # as stage 2 records it: the stage-1 adapter
    (second / "adapter_config.json").write_text(json.dumps(config))
    got = ReasoningEmbeddings.from_pretrained(second, device="cpu").encode_documents(DOCS[:3])
    assert cosines(got, want).min() >= 0.99999
    assert cosines(got, merged.encode_documents(DOCS[:3])).min() < 0.999  # the second one counts


def test_adapter_settings_override_the_base(adapter, tmp_path):
    folder, _ = adapter
    custom = tmp_path / "custom"
    shutil.copytree(folder, custom)
    (custom / "config.json").write_text(json.dumps({"search_r3": {"document_instruction": "Passage:"}}))
    loaded = ReasoningEmbeddings.from_pretrained(custom, device="cpu")
    assert loaded.settings.document_instruction == "Passage:"


def test_pickle_only_adapter_is_refused(adapter, tmp_path):
    folder, _ = adapter
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(folder / "adapter_config.json", bad / "adapter_config.json")
    torch.save(load_file(folder / "adapter_model.safetensors"), bad / "adapter_model.bin")
    with pytest.raises(ModelLoadError, match="never loads pickle"):
        ReasoningEmbeddings.from_pretrained(bad, device="cpu")
