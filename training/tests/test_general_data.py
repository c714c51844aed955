"""The v2 data builder: general sources, expansion reasoning, teacher scores, held-out BEIR set."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from search_r3.collections import load_beir
from search_r3.settings import DEFAULT_CLOSING_TEXT
from search_r3_train.collator import teacher_group
from search_r3_train.data import TrainingExample, parse_example
from search_r3_train.expansion import TermStatistics, expansion_reasoning, expansion_terms
from search_r3_train.general_data import (
    augment_layout,
    crop_pair,
    heldout_member,
    sentences,
    unique_ids,
    write_beir,
)
from search_r3_train.general_sources import (
    GeneralDoc,
    SourceMissingError,
    dictd_number,
    docstring_pairs,
    man_pair,
    render_man,
    require,
    wordnet_record,
)
from search_r3_train.losses import listwise_distill_loss
from search_r3_train.teacher import add_teacher_scores, rrf_scores

# -- expansion ----------------------------------------------------------------------------------
POOL = [
    "the wing stall begins at the leading edge of the separation bubble",
    "wing flutter and wing vibration",
    "boundary layer separation causes stall on the wing",
    "heat transfer in the boundary layer",
    "edge tones",
    "wing loads",
    "panel flutter",
    "shell buckling",
    "shock waves",
    "jet noise",
    "rotor blades",
    "separation of the boundary layer makes the wing stall; separation grows",
]


def test_expansion_terms_prefer_feedback_terms_and_skip_the_query_stems():
    stats = TermStatistics.from_texts(POOL)
    terms = expansion_terms("why do wings stall", [POOL[-1]], stats, limit=3, max_df_share=0.5)
    # "wing"/"stall" share the query's stems; "separation" (twice in the positive) comes first;
    # "makes" and "grows" occur in no other pool text
    assert terms == ["separation", "boundary", "layer"]


def test_idf_and_document_frequency_bounds():
    stats = TermStatistics.from_texts(POOL)
    # "edge" (2 of 12 pool texts) and "layer" (3 of 12) occur once each in the positive
    assert expansion_terms("flow", ["layer edge"], stats, max_df_share=0.5) == ["edge", "layer"]
    assert math.isclose(stats.idf("edg"), math.log(1 + 12 / 2))
    # a word of one pool text only ("tones") and a word above max_df_share are not proposed
    assert expansion_terms("flow", ["edge tones"], stats) == ["edge"]
    assert expansion_terms("flow", ["edge tones"], stats, max_df_share=0.1) == []


def test_reasoning_styles_and_the_closing_text():
    stats = TermStatistics.from_texts(POOL)
    positive = ["boundary layer separation causes stall"]
    fillers = [f"filler text number {i}" for i in range(10)]
    stats = TermStatistics.from_texts([*POOL, *positive, *fillers])
    expanded = expansion_reasoning("what makes a wing stall", positive, stats)
    plain = expansion_reasoning("what makes a wing stall", positive, stats, style="query")
    assert expanded.startswith(plain[:-1]) and plain == "Key concepts: makes, wing, stall."
    assert "Related: " in expanded and "separation" in expanded and "boundary" in expanded
    assert DEFAULT_CLOSING_TEXT.strip() not in expanded and "\n" not in expanded
    assert expansion_reasoning("what is the", positive, stats) is None
    with pytest.raises(ValueError, match="reasoning style"):
        expansion_reasoning("wing", positive, stats, style="long")


# -- distillation -------------------------------------------------------------------------------
def test_listwise_distill_loss_matches_a_hand_computed_kl():
    student = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    # row 1: p_t uniform, p_s = softmax(1,0,0); row 2: p_t = softmax(2,0,0), p_s uniform
    e = math.e
    ps1 = [e / (e + 2), 1 / (e + 2), 1 / (e + 2)]
    kl1 = sum(1 / 3 * math.log((1 / 3) / p) for p in ps1)
    pt2 = [e**2 / (e**2 + 2), 1 / (e**2 + 2), 1 / (e**2 + 2)]
    kl2 = sum(p * math.log(p / (1 / 3)) for p in pt2)
    loss = listwise_distill_loss(student, teacher, 1.0, 1.0)
    assert math.isclose(float(loss), (kl1 + kl2) / 2, rel_tol=1e-5)
    masked = listwise_distill_loss(student, teacher, 1.0, 1.0, torch.tensor([True, False]))
    assert math.isclose(float(masked), kl1, rel_tol=1e-5)
    # temperatures divide the scores: student at 0.5 is the same as scores doubled
    assert math.isclose(
        float(listwise_distill_loss(student, teacher, 0.5, 1.0)),
        float(listwise_distill_loss(2 * student, teacher, 1.0, 1.0)),
        rel_tol=1e-6,
    )
    student.requires_grad_(True)
    listwise_distill_loss(student, teacher, 1.0, 1.0).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0


def test_rrf_scores_by_hand():
    fused = rrf_scores(np.array([3.0, 1.0, 2.0]), np.array([0.1, 0.9, 0.5]), k=60)
    expected = [1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 1 / 62 + 1 / 62]
    assert np.allclose(fused, expected)


def test_teacher_scores_follow_both_systems_and_reach_the_collator():
    words = ["wing", "stall", "heat", "flux", "shell", "buckling"]

    def encode(texts: list[str]) -> np.ndarray:  # a bag-of-words encoder, unit length
        vectors = np.array([[t.count(w) for w in words] for t in texts], dtype=float) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    example = TrainingExample(
        query="wing stall", pos=["stall of a wing at high incidence"], neg=["heat flux", "shell buckling"]
    )
    add_teacher_scores([example], encode)
    assert example.teacher_pos[0] > max(example.teacher_neg)
    assert math.isclose(example.teacher_pos[0], 2 / 61, rel_tol=1e-5)
    row = parse_example(example.to_json(), "x")
    assert row.teacher_pos == example.teacher_pos and row.teacher_neg == example.teacher_neg
    assert teacher_group(row, [row.pos[0], row.neg[1]]) == [row.teacher_pos[0], row.teacher_neg[1]]
    assert teacher_group(row, [row.pos[0], "a stand-in from another example"]) is None
    with pytest.raises(ValueError, match="2 scores for 1 texts"):
        parse_example({"query": "q", "pos": ["d"], "teacher_pos": [1.0, 2.0]}, "x")


# -- sources ------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_page_rendered_by_groff_gives_name_summary_and_description(tmp_path: Path):
    page = tmp_path / "frob.1"
    page.write_text(
        ".TH FROB 1\n.SH NAME\nfrob \\- twiddle the bits of a file\n.SH SYNOPSIS\n.B frob\nfile\n"
        ".SH DESCRIPTION\n.B frob\nreads each\n.I file\nand inverts every bit in place, "
        "keeping a backup copy beside it unless told otherwise.\n.PP\nSecond paragraph.\n"
    )
    pair = man_pair(render_man(page))
    assert pair is not None
    summary, text = pair
    assert summary == "twiddle the bits of a file"
    assert text.startswith("frob reads each file and inverts every bit in place")
    assert text.endswith("\n\nSecond paragraph.") and "SYNOPSIS" not in text


def test_docstring_pairs_read_with_ast_without_importing():
    source = (
        '"""Module summary line here.\n\nModule body text that is long enough to be a document '
        'about the module and what it does."""\n'
        "import does_not_exist\n"
        "def public(x):\n"
        '    """Add one to a number.\n\n    Longer description of the function which explains '
        'the behaviour in detail for the reader."""\n'
        "def _private():\n"
        '    """Hidden summary.\n\n    Hidden body that is long enough to be a document too, really."""\n'
    )
    pairs = {name: (summary, body) for name, summary, body in docstring_pairs(source, "mod")}
    assert set(pairs) == {"mod", "mod.public"}
    assert pairs["mod.public"][0] == "Add one to a number."
    assert pairs["mod.public"][1].startswith("Longer description")
    assert list(docstring_pairs("def broken(:\n", "bad")) == []


def test_dictd_numbers_and_wordnet_lines():
    assert dictd_number("A") == 0 and dictd_number("B") == 1 and dictd_number("BA") == 64
    line = (
        "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "
        '"the dog barked all night"'
    )
    synset, words, gloss = wordnet_record(line)
    assert synset == "n02084071" and words == ["dog", "domestic dog"]
    assert gloss.startswith("a member of the genus Canis")
    assert wordnet_record("  1 This software and database is being provided") is None


def test_missing_source_names_the_install_command(monkeypatch: pytest.MonkeyPatch):
    from search_r3_train import general_sources

    info = general_sources.SOURCES["foldoc"]
    monkeypatch.setitem(
        general_sources.SOURCES,
        "foldoc",
        general_sources.SourceInfo("foldoc", "/nonexistent/x", info.install, ""),
    )
    with pytest.raises(SourceMissingError, match="apt-get install -y dict-foldoc"):
        require("foldoc")


# -- crops, layout, held-out set ----------------------------------------------------------------
def test_crop_pair_takes_a_later_sentence_out_of_the_document():
    title = "flutter of wings"
    text = (
        "flutter of wings . the flutter boundary of swept wings was measured in a wind tunnel . "
        "results agree with strip theory for all the models that were tested . a short note ."
    )
    assert sentences("a b c . d e f. g") == ["a b c", "d e f", "g"]
    query, positive = crop_pair(title, text, random.Random(0))
    assert query in {
        "results agree with strip theory for all the models that were tested",
    } or query.startswith("the flutter boundary")
    assert query not in positive and "flutter of wings" not in positive.split(".")[0][:5]
    assert crop_pair(title, "flutter of wings . one sentence only .", random.Random(0)) is None


def test_layout_augmentation_rewraps_every_copy_of_a_text_alike():
    long = " ".join(f"word{i}" for i in range(60))
    examples = [
        TrainingExample("q1", pos=[long], neg=["short"]),
        TrainingExample("q2", pos=["x"], neg=[long]),
    ]
    assert augment_layout(examples, 1.0, seed=1) == 3
    assert examples[0].pos[0] == examples[1].neg[0] != long
    assert "\n" in examples[0].pos[0] and examples[0].pos[0].split() == long.split()
    untouched = [TrainingExample("q", pos=[long])]
    assert augment_layout(untouched, 0.0, seed=1) == 0 and untouched[0].pos == [long]


def test_heldout_set_is_stable_and_readable_by_the_beir_loader(tmp_path: Path):
    ids = [f"man:page{i}" for i in range(400)]
    held = [i for i in ids if heldout_member(i, 10.0)]
    assert held == [i for i in ids if heldout_member(i, 10.0)]
    assert 20 <= len(held) <= 65
    docs = [GeneralDoc("man:ls.1", "list directory contents", "List information about files.", "man")]
    docs.append(GeneralDoc("python:os", "OS routines", "This module exports functions.", "python"))
    docs.append(GeneralDoc("man:ls.1", "again", "A second page with the same id.", "man"))
    docs = unique_ids(docs)
    assert [d.doc_id for d in docs] == ["man:ls.1", "python:os", "man:ls.1#2"]
    write_beir(docs, tmp_path / "heldout")
    collection = load_beir(tmp_path / "heldout")
    assert collection.queries == {"q0": "list directory contents", "q1": "OS routines", "q2": "again"}
    assert len(collection.corpus) == 3
    assert collection.qrels["q1"] == {"python:os": 1}


def test_cli_builds_data_with_a_python_source_and_never_a_test_query(cranfield_dir: Path, tmp_path: Path):
    from search_r3.collections import load_collection, split_queries
    from search_r3_train.cli import main

    out = tmp_path / "train.jsonl"
    code = main(
        [
            "build-general-data",
            str(cranfield_dir),
            "-o",
            str(out),
            "--reasoning_copy",
            str(tmp_path / "r.jsonl"),
            "--heldout",
            str(tmp_path / "heldout"),
            "--sources",
            "python",
            "--max_per_source",
            "60",
            "--no_titles",
            "--depth",
            "3",
            "--pseudo_depth",
            "3",
        ]
    )
    assert code == 0
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["general_sources"]["python"]["licence"] == "PSF License 2.0"
    assert manifest["sources"]["python pairs"] + sum(manifest["heldout"]["pairs"].values()) == 60
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    everything = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == len(everything) == manifest["examples"]
    assert all(r.get("reasoning", "").startswith("Key concepts: ") for r in everything)
    assert sum("Related: " in r["reasoning"] for r in everything) > len(everything) / 2
    test_queries = set(split_queries(load_collection(cranfield_dir))["test"].queries.values())
    assert not test_queries & {r["query"] for r in rows}
    heldout = load_beir(tmp_path / "heldout")
    trained = {t for r in rows for t in r["pos"]}
    assert heldout.queries and not trained & {d["text"] for d in heldout.corpus.values()}
