"""Training data: JSON lines checked with file:line errors, collections converted on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_r3_train.data import (
    DataFormatError,
    collection_from_examples,
    examples_from_collection,
    load_dev_collection,
    read_jsonl,
)
from search_r3_train.mine_negatives import add_negatives
from search_r3_train.mine_negatives import main as mine_main


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_valid_file_reads_every_field(sft_jsonl: Path):
    examples = read_jsonl(sft_jsonl)
    assert len(examples) == 8
    assert examples[0].reasoning and examples[1].reasoning is None
    assert examples[0].pos and examples[0].neg
    assert examples[2].source == f"{sft_jsonl}:3"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"pos": ["a"]}', 'missing field "query"'),
        ('{"query": "q"}', 'missing field "pos"'),
        ('{"query": "q", "pos": []}', '"pos" is empty'),
        ('{"query": "q", "pos": "a doc"}', '"pos" must be a list of strings, got str'),
        ('{"query": "q", "pos": ["a", 3]}', '"pos"[1] must be a string, got int'),
        ('{"query": 5, "pos": ["a"]}', '"query" must be a string, got int'),
        ('{"query": "q", "pos": ["a"], "neg": [null]}', '"neg"[0] must be a string, got NoneType'),
        ('{"query": "q", "pos": ["a"], "reasoning": 1}', '"reasoning" must be a string or null'),
        ('{"query": "q", "pos": ["a"]', "not valid JSON"),
        ('["q", ["a"]]', "expected a JSON object, got list"),
        ('{"query": "  ", "pos": ["a"]}', '"query" is empty'),
    ],
)
def test_bad_line_is_reported_with_file_and_line(tmp_path: Path, line: str, message: str):
    good = '{"query": "fine", "pos": ["ok"]}'
    path = write(tmp_path, [good, "", line])
    with pytest.raises(DataFormatError) as info:
        read_jsonl(path)
    text = str(info.value)
    assert f"{path}:3: {message}" in text
    assert f"{path}:1" not in text  # the good line is not blamed


def test_all_bad_lines_are_listed_together(tmp_path: Path):
    path = write(tmp_path, ['{"query": "a", "pos": []}', '{"query": "b", "pos": ["x"]}', '{"pos": ["y"]}'])
    with pytest.raises(DataFormatError, match="2 bad line") as info:
        read_jsonl(path)
    assert f"{path}:1:" in str(info.value) and f"{path}:3:" in str(info.value)


def test_missing_and_empty_files(tmp_path: Path):
    with pytest.raises(DataFormatError, match="does not exist"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DataFormatError, match="no training examples"):
        read_jsonl(write(tmp_path, [""]))


def test_examples_become_a_collection_with_positives_as_qrels(sft_jsonl: Path):
    examples = read_jsonl(sft_jsonl)
    collection = collection_from_examples(examples, "toy")
    assert len(collection.queries) == 8
    assert len(collection.corpus) == 16  # every text once (negatives are other topics' positives)
    q0 = collection.qrels["q0"]
    assert {collection.doc_text(d) for d in q0} == set(examples[0].pos)


def test_bm25_negatives_never_include_positives(sft_jsonl: Path):
    examples = read_jsonl(sft_jsonl)
    stripped = [type(e)(e.query, e.pos, [], e.reasoning) for e in examples]
    mined = add_negatives(stripped, "bm25", depth=3)
    for before, after in zip(stripped, mined, strict=True):
        assert not set(after.neg) & set(before.pos)
        assert len(after.neg) == len(set(after.neg))


def test_mine_negatives_cli_writes_valid_training_file(sft_jsonl: Path, tmp_path: Path):
    out = tmp_path / "mined.jsonl"
    assert mine_main(["--input", str(sft_jsonl), "-o", str(out), "--depth", "2"]) == 0
    mined = read_jsonl(out)
    original = read_jsonl(sft_jsonl)
    assert len(mined) == len(original)
    assert all(len(m.neg) >= len(o.neg) for m, o in zip(mined, original, strict=True))
    assert json.loads(out.read_text().splitlines()[0])["reasoning"] == original[0].reasoning


def test_cranfield_train_split_with_bm25_negatives(cranfield_dir: Path):
    from search_r3.collections import load_collection, split_queries

    train = split_queries(load_collection(cranfield_dir), seed=13)["train"]
    examples = examples_from_collection(train, negatives_depth=5)
    assert len(examples) == len(train.judged_query_ids())
    for example in examples[:20]:
        assert example.pos and len(example.neg) == 5
        assert not set(example.neg) & set(example.pos)
    dev = load_dev_collection(None, str(cranfield_dir), "dev", [0.5, 0.2, 0.3], 13, max_docs=400)
    assert not set(dev.queries) & set(train.queries)
    assert len(dev.corpus) == 400
    assert all(d in dev.corpus for docs in dev.qrels.values() for d in docs)


def test_model_negatives_come_from_the_current_model(sft_jsonl: Path, tmp_path: Path, tiny_llama_dir: Path):
    out = tmp_path / "model-mined.jsonl"
    argv = ["--input", str(sft_jsonl), "-o", str(out), "--method", "model", "--model", str(tiny_llama_dir)]
    assert mine_main([*argv, "--depth", "3", "--device", "cpu"]) == 0
    for before, after in zip(read_jsonl(sft_jsonl), read_jsonl(out), strict=True):
        added = after.neg[len(before.neg) :]
        assert 1 <= len(added) <= 3  # top 3 unjudged, minus those already listed as negatives
        assert after.neg[: len(before.neg)] == before.neg
        assert not set(added) & set(before.pos) and not set(added) & set(before.neg)
    with pytest.raises(DataFormatError, match="--model"):
        mine_main(["--input", str(sft_jsonl), "-o", str(out), "--method", "model"])
