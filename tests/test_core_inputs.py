"""Bad input to the core and to model loading: a clear ``search_r3.errors`` exception that names
the fix, never a library error or a silent oddity; and the loading guarantees (no code from the
folder, user text never yields the embed id, adapter cycles refused, thread-safe reasoning)."""

from __future__ import annotations

import ast
import json
import logging
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from search_r3 import InvalidInputError, ModelLoadError, ReasoningEmbeddings, SearchR3Settings, init_model
from search_r3.prompts import CHARS_PER_TOKEN
from search_r3.settings import check_count

EMBED = "<|embed_token|>"


@pytest.fixture(scope="module")
def emb(tiny_llama_dir: Path) -> ReasoningEmbeddings:
    return ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_reasoning_tokens=4)


# -- counts and budgets: one validator, ints only --------------------------------------------------


@pytest.mark.parametrize("value", ["5", 1.5, True, None, -1])
def test_budget_accepts_whole_numbers_only(emb: ReasoningEmbeddings, value) -> None:
    with pytest.raises(InvalidInputError, match="max_reasoning_tokens must be"):
        emb.encode_queries(["why?"], max_reasoning_tokens=value) if value is not None else check_count(
            "max_reasoning_tokens", value
        )


def test_numpy_ints_are_whole_numbers(emb: ReasoningEmbeddings) -> None:
    out = emb.encode_queries(["why?"], max_reasoning_tokens=np.int64(2))
    assert out.generated_tokens[0] <= 2


@pytest.mark.parametrize("batch_size", [-1, 0, 2.0])
def test_batch_size_is_checked(emb: ReasoningEmbeddings, batch_size) -> None:
    with pytest.raises(InvalidInputError, match="batch_size must be"):
        emb.encode_documents(["a", "b"], batch_size=batch_size)
    with pytest.raises(InvalidInputError, match="batch_size must be"):
        emb.encode_queries(["a"], batch_size=batch_size)
    with pytest.raises(InvalidInputError, match="batch_size must be"):
        ReasoningEmbeddings(emb.model, emb.tokenizer, batch_size=batch_size)


def test_budget_past_the_models_positions_is_lowered_with_a_warning(emb: ReasoningEmbeddings, caplog) -> None:
    positions = emb.model.config.max_position_embeddings  # 1024 for the tiny models
    with caplog.at_level(logging.WARNING, logger="search_r3.model"):
        budget = emb.checked_budget(10 * positions)
    assert budget == positions - emb.max_length - len(emb.prompts.forced_ids)
    assert "does not fit the model's 1024 positions" in caplog.text
    assert emb.checked_budget(8) == 8  # a budget that fits is kept


def test_settings_values_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="must be a JSON object"):
        SearchR3Settings.from_dict("oops")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="max_reasoning_tokens must be a whole number"):
        SearchR3Settings.from_dict({"max_reasoning_tokens": "5"})
    with pytest.raises(InvalidInputError, match="max_length must be >= 1"):
        SearchR3Settings(max_length=0)


def test_model_whose_settings_entry_is_not_an_object(tiny_llama_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_llama_dir, tmp_path / "oops")
    config = json.loads((model / "config.json").read_text())
    config["search_r3"] = "oops"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        InvalidInputError, match="'search_r3' entry of the model config must be a JSON object"
    ):
        ReasoningEmbeddings.from_pretrained(model, device="cpu")


# -- text --------------------------------------------------------------------------------------------


def test_lone_surrogate_is_a_clear_error(emb: ReasoningEmbeddings) -> None:
    with pytest.raises(
        InvalidInputError, match=r"document at index 1 holds a lone surrogate .* errors='replace'"
    ):
        emb.encode_documents(["fine", "bad \ud800 text"])
    with pytest.raises(InvalidInputError, match="query at index 0 holds a lone surrogate"):
        emb.encode_queries(["\udfff"])


def test_huge_text_is_cut_to_a_character_bound_before_tokenising(
    emb: ReasoningEmbeddings, monkeypatch
) -> None:
    words = "the wing lift grows with the angle of attack " * 20_000  # ~900,000 characters
    bound = emb.max_length * CHARS_PER_TOKEN
    assert len(words) > 50 * bound
    full = emb.tokenizer(words, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    seen: list[int] = []
    original = emb.prompts.encode_plain

    def spy(text: str) -> list[int]:
        seen.append(len(text))
        return original(text)

    monkeypatch.setattr(emb.prompts, "encode_plain", spy)
    prompt = emb.prompts.document_ids(words)
    assert seen == [bound]
    template = emb.prompts.document_ids("x")
    kept = len(prompt) - (len(template) - 1)  # user tokens in the prompt (the "x" is one token)
    assert prompt[-len(emb.prompts.closing_ids) :] == emb.prompts.closing_ids
    assert kept == emb.max_length - (len(template) - 1)  # still fills max_length
    start = (
        len(template)
        - 1
        - len(emb.prompts.closing_ids)
        - len(emb.prompts._template(emb.settings.document_instruction).suffix)
    )
    assert prompt[start : start + kept] == full[:kept]  # the same tokens the whole text gives


# -- loading: adapter cycles -------------------------------------------------------------------------


def adapter_folder(path: Path, base: Path) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    return path


def test_adapter_whose_base_is_itself(tmp_path: Path) -> None:
    a = adapter_folder(tmp_path / "a", tmp_path / "a")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"Adapter cycle: .*a -> .*a\. ") as info:
        ReasoningEmbeddings.from_pretrained(a, device="cpu")
    assert time.perf_counter() - start < 5
    assert "\n" not in str(info.value) and len(str(info.value)) < 600


def test_adapters_that_name_each_other(tmp_path: Path, tiny_llama_dir: Path) -> None:
    a = adapter_folder(tmp_path / "a", tmp_path / "b")
    adapter_folder(tmp_path / "b", a)
    with pytest.raises(ModelLoadError, match=r"Adapter cycle: .*a -> .*b -> .*a\. "):
        ReasoningEmbeddings.from_pretrained(a, device="cpu")


def test_a_real_adapter_chain_still_loads(tiny_llama_dir: Path, random_adapter, tmp_path: Path) -> None:
    first = random_adapter(tiny_llama_dir, tmp_path / "first", seed=1, r=2, tokens=False)
    second = random_adapter(tiny_llama_dir, tmp_path / "second", seed=2, r=2, tokens=False)
    config = json.loads((second / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(first)
    (second / "adapter_config.json").write_text(json.dumps(config))
    loaded = ReasoningEmbeddings.from_pretrained(second, device="cpu")
    assert loaded.encode_documents(["x"]).shape == (1, loaded.embedding_dimension)


# -- loading: the embed token is special, so user text never yields its id ---------------------------


def unmark_embed_token(folder: Path) -> None:
    """Rewrite the tokenizer files so that the embed token is a plain added token."""
    tok = json.loads((folder / "tokenizer.json").read_text())
    for entry in tok["added_tokens"]:
        if entry["content"] == EMBED:
            entry["special"] = False
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    for entry in config.get("added_tokens_decoder", {}).values():
        if entry["content"] == EMBED:
            entry["special"] = False
    for key in ("additional_special_tokens", "extra_special_tokens"):
        if isinstance(config.get(key), list):
            config[key] = [t for t in config[key] if t != EMBED]
        elif isinstance(config.get(key), dict):
            config[key] = {k: v for k, v in config[key].items() if v != EMBED}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "special_tokens_map.json").unlink(missing_ok=True)


def test_folder_whose_embed_token_is_not_special_is_repaired(
    tiny_llama_dir: Path, tmp_path: Path, caplog
) -> None:
    from transformers import AutoTokenizer

    folder = shutil.copytree(tiny_llama_dir, tmp_path / "plain-token")
    unmark_embed_token(folder)
    raw = AutoTokenizer.from_pretrained(folder)
    embed_id = raw.convert_tokens_to_ids(EMBED)
    text = f"ignore this {EMBED} and {EMBED}{EMBED} too"
    raw_ids = raw(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert raw_ids.count(embed_id) == 3  # the hole: user text yields the embed id

    with caplog.at_level(logging.WARNING, logger="search_r3.loading"):
        loaded = ReasoningEmbeddings.from_pretrained(folder, device="cpu", max_reasoning_tokens=2)
    assert "is not a special token" in caplog.text
    assert loaded.embed_id == embed_id
    for kind in ("document", "query", "reasoning"):
        prompt = loaded.prompts.build([text], kind)[0]
        assert prompt.count(embed_id) == (0 if kind == "reasoning" else 1)  # ours only, at the end
    assert loaded.prompts.encode_plain(text).count(embed_id) == 0
    assert np.isfinite(loaded.encode_documents([text])).all()


def test_init_marks_an_existing_plain_embed_token_special(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    base = shutil.copytree(tiny_llama_dir, tmp_path / "base")
    unmark_embed_token(base)
    out = init_model(base, tmp_path / "r3")
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert EMBED in tokenizer.all_special_tokens


def test_init_refuses_an_output_that_is_a_file(tiny_llama_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidInputError, match="is a file; pass a folder"):
        init_model(tiny_llama_dir, target)


# -- sentence-transformers: the documented load runs no code from the folder -------------------------


def test_documented_load_runs_no_code_from_the_folder(tiny_llama_dir: Path, tmp_path: Path, caplog) -> None:
    from search_r3.st_module import load_sentence_transformer

    folder = shutil.copytree(tiny_llama_dir, tmp_path / "hostile")
    marker = tmp_path / "marker"
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from search_r3.st_module import SearchR3Module as Evil\n"
    )
    (folder / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil.Evil"}])
    )
    with caplog.at_level(logging.WARNING, logger="search_r3.st_module"):
        model = load_sentence_transformer(str(folder), device="cpu")
    assert not marker.exists()
    assert "evil.Evil" in caplog.text and "nothing from the folder is imported or run" in caplog.text
    assert model.encode_document(["x"]).shape[0] == 1


# -- sentence-transformers: encode_queries from many threads ----------------------------------------


def test_encode_queries_from_eight_threads_keeps_every_reasoning(talkative_llama_dir: Path) -> None:
    from search_r3.st_module import encode_queries, load_sentence_transformer

    model = load_sentence_transformer(str(talkative_llama_dir), device="cpu", max_reasoning_tokens=3)
    groups = [[f"query {t} {i} about wings" for i in range(4)] + ["shared query"] for t in range(8)]
    reference = encode_queries(model, groups[0])
    assert all(reference.reasoning) and all(n > 0 for n in reference.generated_tokens)  # not vacuous
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                results[t] = encode_queries(model, groups[t], batch_size=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for t, out in results.items():
        assert len(out.reasoning) == 5
        assert all(out.reasoning) and all(n > 0 for n in out.generated_tokens), (t, out.reasoning)
        alone = encode_queries(model, groups[t])
        assert out.reasoning == alone.reasoning
        np.testing.assert_allclose(out.embeddings, alone.embeddings, atol=1e-5)


# -- import structure: the lifecycle modules never import their users back -----------------------------


def test_loading_and_saving_are_not_part_of_an_import_circle() -> None:
    root = Path(__file__).resolve().parent.parent / "search_r3"
    lifecycle = ["loading", "saving", "init_model", "pretrained", "settings"]
    users = {"search_r3.model", "search_r3.st_module"}
    for name in lifecycle:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in users, f"{name}.py imports {node.module}"
                assert not (
                    node.module == "search_r3" and {a.name for a in node.names} & {"model", "st_module"}
                )
        nested = [
            n.module
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef)
            for n in ast.walk(f)
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("search_r3")
        ]
        assert nested == [], f"{name}.py imports {nested} inside a function"
