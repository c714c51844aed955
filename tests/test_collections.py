"""Test collections: BEIR, TREC and classic (Cranfield) readers, query splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_r3.collections import (
    Collection,
    CollectionFormatError,
    load_collection,
    load_cranfield,
    split_queries,
)


def write_beir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    docs = [
        {"_id": "d1", "title": "Wings", "text": "Lift on a wing."},
        {"_id": "d2", "title": "", "text": "Boundary layers separate."},
        {"_id": "d3", "title": "Heat", "text": "Conduction in slabs."},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [{"_id": "q1", "text": "wing lift"}, {"_id": "q2", "text": "heat"}, {"_id": "q3", "text": "x"}]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td3\t1\n")
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td2\t1\n")
    return root


def write_classic(root: Path) -> Path:
    """A tiny collection with Cranfield's quirks: irregular query .I numbers, a bare final .I line."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mini.all.3").write_text(
        ".I 1\n.T\nwing theory .\n.A\nsmith\n.W\nwing theory .\n  lift of thin wings .\n"
        ".I 2\n.T\nheat flow .\n.W\nheat flow .\nslabs .\n"
        ".I 3\n.T\n.W\n\n.I\n"
    )
    (root / "mini.qry").write_text(".I 001\n.W\nwhat is the lift of a wing .\n.I 004\n.W\nheat in slabs .\n")
    # codes: 1 complete answer .. 4 minimum interest, -1 not relevant
    (root / "miniqrel").write_text("1 1 1\n1 2 -1\n2 2 4\n")
    (root / "miniqrel.readme").write_text("not a qrels file\n")
    return root


def test_beir_folder(tmp_path: Path) -> None:
    c = load_collection(write_beir(tmp_path / "beir"))
    assert c.name == "beir"
    assert c.doc_ids() == ["d1", "d2", "d3"]
    assert c.doc_text("d1") == "Wings\nLift on a wing."
    assert c.doc_text("d2") == "Boundary layers separate."  # no title, no leading newline
    assert c.qrels == {"q1": {"d1": 2}, "q2": {"d3": 1}}  # relevance 0 dropped
    assert set(c.queries) == {"q1", "q2"}  # q3 is judged only in the dev split
    dev = load_collection(tmp_path / "beir", split="dev")
    assert dev.queries == {"q3": "x"} and dev.qrels == {"q3": {"d2": 1}}


def test_beir_missing_split_names_available_ones(tmp_path: Path) -> None:
    write_beir(tmp_path / "beir")
    with pytest.raises(CollectionFormatError, match=r"train\.tsv not found.*\['dev', 'test'\]"):
        load_collection(tmp_path / "beir", split="train")


def test_trec_folder_with_sgml_topics(tmp_path: Path) -> None:
    root = tmp_path / "trec"
    root.mkdir()
    (root / "corpus.tsv").write_text("D1\tWings\tLift on a wing.\nD2\tBoundary layers separate.\n")
    (root / "topics.txt").write_text(
        "<top>\n<num> Number: 301\n<title> wing lift\n<desc> Description:\nabout wings\n</top>\n"
        "<top>\n<num> 302\n<title>\nboundary layer\n</top>\n"
    )
    (root / "qrels.txt").write_text("301 0 D1 1\n301 0 D2 0\n302 0 D2 2\n")
    c = load_collection(root)
    assert c.queries == {"301": "wing lift", "302": "boundary layer"}
    assert c.corpus["D1"] == {"title": "Wings", "text": "Lift on a wing."}
    assert c.corpus["D2"] == {"title": "", "text": "Boundary layers separate."}
    assert c.qrels == {"301": {"D1": 1}, "302": {"D2": 2}}


def test_trec_folder_with_jsonl(tmp_path: Path) -> None:
    root = tmp_path / "trec"
    root.mkdir()
    (root / "docs.jsonl").write_text(json.dumps({"docno": "a", "contents": "alpha"}) + "\n")
    (root / "queries.tsv").write_text("1\tfind alpha\n")
    (root / "qrels").write_text("1 a 1\n")  # three-column qrels
    c = load_collection(root)
    assert c.doc_text("a") == "alpha" and c.queries == {"1": "find alpha"} and c.qrels == {"1": {"a": 1}}


def test_classic_format_quirks(tmp_path: Path) -> None:
    c = load_collection(write_classic(tmp_path / "mini"))
    assert c.doc_ids() == ["1", "2", "3"]  # the bare ".I" line adds no record
    assert c.corpus["1"]["title"] == "wing theory ."
    assert c.doc_text("1") == "wing theory .\nwing theory . lift of thin wings ."
    # queries are numbered by position (1, 2), not by their .I numbers (001, 004)
    assert c.queries == {"1": "what is the lift of a wing .", "2": "heat in slabs ."}
    assert c.qrels == {"1": {"1": 4}, "2": {"2": 1}}  # gain = 5 - code; -1 dropped


def test_bad_paths_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CollectionFormatError, match="does not exist"):
        load_collection(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(CollectionFormatError, match=r"(?s)notes\.txt.*BEIR.*TREC.*classic"):
        load_collection(tmp_path / "empty")
    with pytest.raises(CollectionFormatError, match="is a file"):
        load_collection(tmp_path / "empty" / "notes.txt")


def test_malformed_lines_are_reported_with_position(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "beir")
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{broken\n')
    with pytest.raises(CollectionFormatError, match=r"corpus\.jsonl:2"):
        load_collection(root)


def _many(n: int) -> Collection:
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(n)}
    queries = {f"q{i}": f"query {i}" for i in range(n)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(n) if i % 10 != 0}  # every 10th is unjudged
    return Collection("many", corpus, queries, qrels)


def test_split_queries_is_disjoint_fixed_and_judged_only() -> None:
    c = _many(100)
    splits = split_queries(c)
    ids = {name: set(s.queries) for name, s in splits.items()}
    assert set(ids) == {"train", "dev", "test"}
    assert not (ids["train"] & ids["dev"] or ids["train"] & ids["test"] or ids["dev"] & ids["test"])
    assert ids["train"] | ids["dev"] | ids["test"] == set(c.judged_query_ids())
    assert [len(ids[k]) for k in ("train", "dev", "test")] == [45, 18, 27]
    assert all(set(s.qrels) == set(s.queries) for s in splits.values())
    assert splits["test"].corpus is c.corpus and splits["test"].name == "many:test"
    again = split_queries(c)
    assert {k: set(v.queries) for k, v in again.items()} == ids
    other = split_queries(c, seed=14)
    assert set(other["test"].queries) != ids["test"]


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="three non-negative"):
        split_queries(_many(10), fractions=(0.5, 0.5))


def test_subset_keeps_corpus_and_only_given_queries() -> None:
    c = _many(20)
    sub = c.subset(["q1", "q2", "missing"])
    assert list(sub.queries) == ["q1", "q2"] and set(sub.qrels) == {"q1", "q2"}
    assert sub.doc_ids() == c.doc_ids()


def test_cranfield(cranfield_dir: Path) -> None:
    c = load_cranfield(cranfield_dir)
    assert (len(c.corpus), len(c.queries), sum(len(v) for v in c.qrels.values())) == (1400, 225, 1837)
    assert c.queries["1"].startswith("what similarity laws must be obeyed")
    assert c.queries["3"].startswith("what problems of heat conduction")  # its .I is 004
    assert c.qrels["1"]["184"] == 3  # code 2 -> gain 3
    gains = {g for judged in c.qrels.values() for g in judged.values()}
    assert gains == {1, 2, 3, 4}
    assert c.doc_text("1").startswith("experimental investigation of the aerodynamics of a wing")
    assert load_collection(cranfield_dir).qrels == c.qrels  # auto-detected as classic format


def test_classic_documents_can_keep_their_line_breaks(tmp_path: Path) -> None:
    root = write_classic(tmp_path / "mini")
    kept = load_collection(root, keep_line_breaks=True)
    joined = load_collection(root)
    assert kept.doc_text("1") == "wing theory .\nwing theory .\nlift of thin wings ."
    # the same words either way; queries stay one line in both
    for doc_id in joined.corpus:
        assert kept.doc_text(doc_id).split() == joined.doc_text(doc_id).split()
    assert kept.queries == joined.queries
