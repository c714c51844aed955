"""Bad input at the ``search-r3-train`` command line: one ``error:`` line that names the fix, exit 1,
no traceback (``--debug`` or ``SEARCH_R3_DEBUG=1`` shows it), and the check before slow work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from search_r3_train import cli
from search_r3_train.arguments import ConfigError
from search_r3_train.run_sft import resolve_resume


def run_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(autouse=True)
def no_debug(monkeypatch) -> None:
    monkeypatch.delenv("SEARCH_R3_DEBUG", raising=False)


@pytest.mark.parametrize(
    ("fractions", "expected"),
    [
        (["0", "0", "0"], "are all 0, so no query would be in any split"),
        (["0.5", "-1", "0.5"], "non-negative"),
    ],
)
def test_build_data_split_fractions(fractions: list[str], expected: str, tmp_path: Path, capsys) -> None:
    # checked before the collection is read: the folder need not exist
    argv = [
        "build-data",
        str(tmp_path / "coll"),
        "-o",
        str(tmp_path / "x.jsonl"),
        "--split_fractions",
        *fractions,
    ]
    line = run_error(argv, capsys)
    assert expected in line and "0.5 0.2 0.3" in line


def test_rl_needs_two_generations(tmp_path: Path, capsys) -> None:
    line = run_error(["rl", "--num_generations", "1", "--output_dir", str(tmp_path / "rl")], capsys)
    assert "set num_generations to 2 or more" in line


def checkpoint(root: Path) -> Path:
    """A checkpoint folder as the Trainer writes it (small files, real formats)."""
    import torch
    from safetensors.torch import save_file

    folder = root / "checkpoint-2"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2, "log_history": []}))
    save_file({"w": torch.zeros(64)}, str(folder / "model.safetensors"))
    torch.save({"state": {}}, folder / "optimizer.pt")
    return folder


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda f: (f / "trainer_state.json").unlink(), "No trainer_state.json"),
        (lambda f: (f / "trainer_state.json").write_text("{"), "trainer_state.json does not parse"),
        (lambda f: truncate(f / "model.safetensors"), "model.safetensors is damaged"),
        (lambda f: truncate(f / "optimizer.pt"), "optimizer.pt is truncated or damaged"),
    ],
    ids=["no-state", "bad-state", "truncated-weights", "truncated-optimizer"],
)
def test_broken_checkpoint_is_refused(damage, expected: str, tmp_path: Path, sft_jsonl: Path, capsys) -> None:
    folder = checkpoint(tmp_path / "out")
    assert resolve_resume(str(folder), str(tmp_path / "out")) == str(folder)  # whole: accepted
    damage(folder)
    with pytest.raises(ConfigError, match=expected):
        resolve_resume(str(folder), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="delete it and resume from an earlier checkpoint-N"):
        resolve_resume("true", str(tmp_path / "out"))  # the newest checkpoint is checked too
    # the CLI fails before any data or model is read (the model path does not exist)
    argv = [
        "sft",
        "--model_name_or_path", str(tmp_path / "no-model"),
        "--train_file", str(sft_jsonl),
        "--output_dir", str(tmp_path / "out"),
        "--resume_from_checkpoint", str(folder),
        "--use_cpu", "true",
    ]  # fmt: skip
    line = run_error(argv, capsys)
    assert expected in line


def test_model_whose_settings_entry_is_not_an_object(
    tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path, capsys
) -> None:
    model = shutil.copytree(tiny_llama_dir, tmp_path / "oops")
    config = json.loads((model / "config.json").read_text())
    config["search_r3"] = "oops"
    (model / "config.json").write_text(json.dumps(config))
    argv = [
        "sft",
        "--model_name_or_path", str(model),
        "--train_file", str(sft_jsonl),
        "--output_dir", str(tmp_path / "out"),
        "--use_cpu", "true",
        "--max_steps", "1",
    ]  # fmt: skip
    line = run_error(argv, capsys)
    assert "'search_r3' entry of the model config must be a JSON object" in line


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    def broken(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr("search_r3_train.build_data.main", broken)
    line = run_error(["build-data", "x", "-o", "y"], capsys)
    assert "unexpected RuntimeError: boom" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", "build-data", "x", "-o", "y"])
    monkeypatch.setenv("SEARCH_R3_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["build-data", "x", "-o", "y"])
