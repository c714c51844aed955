"""``search-r3-train rl`` end to end on the tiny model, and its errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rl_helpers import rl_argv

from search_r3_train.cli import main as train_main
from search_r3_train.rl.data import RLData, RLDataError


def test_rl_command_trains_and_saves_a_loadable_model(emitting_model_dir, rl_collection_dir, tmp_path):
    from search_r3 import ReasoningEmbeddings

    out = tmp_path / "rl"
    argv = rl_argv(emitting_model_dir, rl_collection_dir, out, "--rl_contrastive_weight", "0.5")
    assert train_main(["rl", *argv]) == 0

    summary = json.loads((out / "rl_summary.json").read_text())
    assert summary["global_step"] == 2
    assert summary["rollouts"] == 8  # 2 steps x 1 query x G = 4
    assert 0 < summary["emitted_fraction"] < 1  # both paths taken and counted
    assert summary["num_docs"] == 32
    env_steps = summary["env_steps"]
    assert env_steps[0]["reason"] == "initial" and env_steps[0]["rows_encoded"] == 32
    assert all(not s["full_refresh"] for s in env_steps[1:])  # later steps refresh locally
    logs = [h for h in summary["log_history"] if "reward" in h]
    assert [h["step"] for h in logs] == [1, 2]
    for key in (
        "retrieval/emitted_fraction",
        "env/encoded_fraction",
        "env/staleness_max",
        "kl",
        "contrastive_loss",
    ):
        assert key in logs[-1], key

    trained = ReasoningEmbeddings.from_pretrained(out, device="cpu")
    start = ReasoningEmbeddings.from_pretrained(emitting_model_dir, device="cpu")
    docs = ["shock wave reflection", "heat transfer in boundary layers"]
    before, after = start.encode_documents(docs), trained.encode_documents(docs)
    assert after.shape == before.shape and not np.allclose(after, before, atol=1e-4)  # it trained
    assert trained.settings.to_dict() == start.settings.to_dict()  # the search-r3 settings travel with it
    assert start.embed_id in trained.model.generation_config.eos_token_id


def test_start_model_without_embed_token_is_refused(tiny_llama_dir, rl_collection_dir, tmp_path, capsys):
    plain = tiny_llama_dir.parent / f"{tiny_llama_dir.name}-base"  # the base LM init_model started from
    assert (plain / "config.json").is_file()
    assert train_main(["rl", *rl_argv(plain, rl_collection_dir, tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "<|embed_token|>" in err and "search-r3-train sft" in err


def _beir(root, corpus_lines, qrels_lines):
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus_lines))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "lift of wings"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(qrels_lines))
    return root


def test_qrels_naming_unknown_documents_are_refused(emitting_model_dir, tmp_path, capsys):
    folder = _beir(tmp_path / "c", [{"_id": "d1", "text": "wing lift"}], ["q1\td1\t1\n", "q1\tghost\t2\n"])
    assert train_main(["rl", *rl_argv(emitting_model_dir, folder, tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "not in the corpus" in err and "ghost" in err


def test_empty_corpus_is_refused(emitting_model_dir, tmp_path, capsys):
    folder = _beir(tmp_path / "c", [], ["q1\td1\t1\n"])
    assert train_main(["rl", *rl_argv(emitting_model_dir, folder, tmp_path / "o")]) == 1
    assert "corpus is empty" in capsys.readouterr().err
    with pytest.raises(RLDataError, match=r"corpus .* is empty"):
        RLData.from_parts({}, {"q": "x"}, {"q": {"d": 1}})


def test_other_bad_data_is_refused(tmp_path):
    with pytest.raises(RLDataError, match=r"No query .* relevant"):
        RLData.from_parts({"d": "text"}, {"q": "x"}, {"q": {"d": 0}})
    with pytest.raises(RLDataError, match="queries that do not exist"):
        RLData.from_parts({"d": "text"}, {"q": "x"}, {"q": {"d": 1}, "zz": {"d": 1}})
    data = RLData.from_parts(
        {"a": "one", "e": " ", "b": "two"}, {"q": "x", "r": "y"}, {"q": {"b": 2}, "r": {"e": 1}}
    )
    assert data.doc_ids == ["a", "b"]  # the empty document is left out, with its judgement
    assert data.query_ids == ["q"] and data.qrels == {"q": {1: 2.0}}  # unjudged query dropped, ids indexed
    corpus = {f"d{i}": f"text {i}" for i in range(10)}
    full = RLData.from_parts(corpus, {"q": "x", "r": "y"}, {"q": {"d7": 2}, "r": {"d2": 1, "d9": 3}})
    small = full.restrict(5, seed=1)
    assert small.num_docs == 5 and {"d2", "d7", "d9"} <= set(small.doc_ids)  # every judged document kept
    for q in ("q", "r"):  # judgements re-indexed onto the same documents
        assert {small.doc_ids[i]: g for i, g in small.qrels[q].items()} == {
            full.doc_ids[i]: g for i, g in full.qrels[q].items()
        }
    assert full.restrict(5, seed=1).doc_ids == small.doc_ids and full.restrict(50) is full
    one = full.sample_queries(1, seed=3)
    assert len(one.query_ids) == 1 and one.qrels == {one.query_ids[0]: full.qrels[one.query_ids[0]]}
    with pytest.raises(RLDataError, match="rl_max_docs"):
        full.restrict(2)
    from search_r3_train.rl.data import load_rl_data

    (tmp_path / "train.jsonl").write_text("{}\n")
    with pytest.raises(RLDataError, match="collection folder"):
        load_rl_data(tmp_path / "train.jsonl")


def test_help_lists_the_rl_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_main(["rl", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--reward_name", "--env_mode", "--env_staleness_budget", "--num_generations", "examples:"):
        assert option in text


def test_cranfield_train_split_loads(cranfield_dir):
    from search_r3_train.rl.data import load_rl_data

    data = load_rl_data(cranfield_dir, "train")
    assert data.num_docs == 1398 and 100 <= len(data.queries) <= 120
    assert all(data.qrels[q] for q in data.query_ids)


@pytest.mark.parametrize("name", ["rl.yaml", "rl_tiny_cpu.yaml", "rl_smollm2_cpu.yaml"])
def test_shipped_configs_parse(name):
    from pathlib import Path

    import search_r3_train
    from search_r3_train.rl.cli import parse_args

    path = Path(search_r3_train.__file__).parent / "configs" / name
    _, _, _, reward_args, env_args, grpo = parse_args(["--config", str(path), "--bf16", "false"])
    assert reward_args.reward_name in ("dcg_scaled", "ndcg", "rr", "margin")
    assert env_args.env_mode == "local" and env_args.config().top_k == env_args.env_top_k
    assert grpo.num_generations >= 2 and grpo.generation_batch_size % grpo.num_generations == 0


def test_evaluation_subset_is_fixed_and_keeps_judged_documents():
    from search_r3.collections import Collection
    from search_r3_train.rl.evaluate import subset

    corpus = {f"d{i}": {"title": "", "text": f"text {i}"} for i in range(40)}
    queries = {f"q{i}": f"query {i}" for i in range(10)}
    qrels = {f"q{i}": {f"d{i}": 1, f"d{i + 20}": 2} for i in range(10)}
    full = Collection("c", corpus, queries, qrels)
    small = subset(full, max_queries=4, max_docs=12, seed=5)
    assert len(small.queries) == 4 and len(small.corpus) == 12
    judged = {d for q in small.queries for d in full.qrels[q]}
    assert judged <= set(small.corpus)
    assert subset(full, 4, 12, seed=5).corpus.keys() == small.corpus.keys()  # same cut for every model
