"""build-data: title pseudo-queries, query-only reasoning, and never a test query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_r3.collections import load_collection, split_queries
from search_r3_train.build_data import english_stopwords, key_concepts, main, reasoning_for, strip_title
from search_r3_train.data import read_jsonl


def test_strip_title_removes_the_repeated_first_sentence():
    title = "experimental investigation of the aerodynamics of a wing"
    text = "experimental investigation of the aerodynamics of a wing .  an experimental study was made ."
    assert strip_title(title, text) == "an experimental study was made ."
    # no repeat: the text stays whole
    assert strip_title(title, "a different start . more") == "a different start . more"
    assert strip_title("Wing Flutter", "wing  flutter. tests at mach 2") == "tests at mach 2"


def test_key_concepts_drop_stop_words_and_repeats():
    stop = english_stopwords()
    assert key_concepts("What is the flutter of a wing and the wing's flutter?", stop)[:2] == [
        "flutter",
        "wing",
    ]
    assert reasoning_for("what is the", stop) is None
    assert key_concepts("can thin shells buckle?", stop) == ["thin", "shells", "buckle"]
    assert reasoning_for("heat transfer in hypersonic flow", stop) == (
        "Key concepts: heat, transfer, hypersonic, flow."
    )


def test_build_data_on_cranfield_uses_train_queries_and_titles_only(cranfield_dir: Path, tmp_path: Path):
    out = tmp_path / "train.jsonl"
    assert main([str(cranfield_dir), "-o", str(out), "--title_queries", "--reasoning_share", "0.5"]) == 0
    examples = read_jsonl(out)
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["examples"] == len(examples)
    collection = load_collection(cranfield_dir)
    splits = split_queries(collection)
    test_queries = set(splits["test"].queries.values())
    train_queries = set(splits["train"].queries.values())
    titles = {collection.corpus[d]["title"].strip().rstrip(" .") for d in collection.corpus}
    queries = [e.query for e in examples]
    assert not test_queries & set(queries)
    assert train_queries & set(queries) and titles & set(queries)
    assert all(q in train_queries or q in titles for q in queries)
    share = sum(e.reasoning is not None for e in examples) / len(examples)
    assert 0.4 < share < 0.6
    # a title query's positive no longer starts with its title, and its negatives exclude its own document
    title_example = next(e for e in examples if e.query in titles and e.query not in train_queries)
    assert not title_example.pos[0].lower().startswith(title_example.query.lower())
    assert all(title_example.pos[0] not in neg for neg in title_example.neg)


@pytest.mark.parametrize("split", ["test", "all"])
def test_build_data_refuses_test_queries(cranfield_dir: Path, tmp_path: Path, split: str):
    with pytest.raises(SystemExit):
        main([str(cranfield_dir), "-o", str(tmp_path / "x.jsonl"), "--split", split])
