"""Short end-to-end SFT runs on a tiny model: CLI, outputs that load, LoRA, resume, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback

from search_r3 import ReasoningEmbeddings
from search_r3_train import cli
from search_r3_train.sft import parse_args

CONFIG = Path(__file__).resolve().parents[1] / "search_r3_train" / "configs" / "sft_tiny_cpu.yaml"
TERMS = ("loss_lm", "loss_kl", "loss_infonce", "loss_triplet")


def sft_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--config", str(CONFIG),
        "--model_name_or_path", str(model),
        "--train_file", str(data),
        "--output_dir", str(out),
        "--text_max_length", "128",
        "--logging_steps", "1",
        "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


def log_history(out: Path) -> list[dict]:
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((checkpoints[-1] / "trainer_state.json").read_text())["log_history"]


def test_sft_cli_trains_evaluates_and_saves_a_loadable_model(
    tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    out = tmp_path / "run"
    argv = sft_argv(tiny_llama_dir, sft_jsonl, out, "--max_steps", "4", "--save_steps", "2")
    argv += ["--dev_file", str(sft_jsonl), "--eval_strategy", "steps", "--eval_steps", "2"]
    argv += ["--load_best_model_at_end", "true"]
    assert cli.main(["sft", *argv]) == 0
    history = log_history(out)
    train_logs = [h for h in history if "loss" in h]
    assert len(train_logs) == 4
    assert all(all(term in h for term in TERMS) for h in train_logs)
    evals = [h for h in history if "eval_nDCG@10" in h]
    assert [h["step"] for h in evals] == [2, 4]
    printed = capsys.readouterr().out
    assert "best dev nDCG@10" in printed and str(out) in printed and "steps:            4" in printed
    # the output is a search-r3 folder: core loader and sentence-transformers both read it
    assert (out / "training_args.json").is_file() and not (out / "training_args.bin").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["search_r3"]["embed_token"] == "<|embed_token|>"
    trained = ReasoningEmbeddings.from_pretrained(out, device="cpu")
    start = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu")
    texts = ["lava flows from an erupting volcano"]
    assert not np.allclose(trained.encode_documents(texts), start.encode_documents(texts))
    assert json.loads((out / "modules.json").read_text())[0]["type"].endswith("SearchR3Module")


def test_lora_adapter_and_merged_outputs_agree(tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path):
    out = tmp_path / "lora"
    argv = sft_argv(tiny_llama_dir, sft_jsonl, out, "--max_steps", "2", "--save_steps", "2")
    argv += ["--use_lora", "true", "--lora_r", "4", "--merge_lora", "true", "--learning_rate", "0.01"]
    assert cli.main(["sft", *argv]) == 0
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "config.json").is_file()
    assert (adapter / "tokenizer.json").is_file()
    assert Path(
        json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    ).is_absolute()
    assert json.loads((adapter / "config.json").read_text())["search_r3"]
    assert not (out / "adapter_config.json").exists()  # the root is the merged model
    texts = ["honey bees pollinate flowers", "opening moves in a chess game"]
    from_adapter = ReasoningEmbeddings.from_pretrained(adapter, device="cpu").encode_documents(texts)
    merged = ReasoningEmbeddings.from_pretrained(out, device="cpu").encode_documents(texts)
    start = ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu").encode_documents(texts)
    np.testing.assert_allclose(from_adapter, merged, atol=1e-4)
    assert not np.allclose(merged, start, atol=1e-4)


def test_lora_adapter_output_loads_in_core_and_sentence_transformers(
    tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path
):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "adapter-only"
    argv = sft_argv(tiny_llama_dir, sft_jsonl, out, "--max_steps", "1", "--save_strategy", "no")
    argv += ["--use_lora", "true", "--lora_r", "4", "--learning_rate", "0.01"]
    assert cli.main(["sft", *argv]) == 0
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["search_r3"]
    texts = ["ocean tides follow the moon"]
    core = ReasoningEmbeddings.from_pretrained(out, device="cpu").encode_documents(texts)
    st = SentenceTransformer(str(out), trust_remote_code=True, device="cpu").encode_document(texts)
    np.testing.assert_allclose(core, st, atol=1e-5)


class Interrupt(Exception):
    pass


class StopAt(TrainerCallback):
    """Raises at the end of a step (simulates a crash or preemption)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt


class RecordSteps(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_interrupted_run_resumes_from_last_checkpoint(tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path):
    from search_r3_train.run_sft import run_sft

    out = tmp_path / "resume"
    argv = sft_argv(tiny_llama_dir, sft_jsonl, out, "--max_steps", "4", "--save_steps", "2")
    argv += ["--loss_weight_kl", "0"]
    with pytest.raises(Interrupt):
        run_sft(*parse_args(argv), callbacks=[StopAt(3)])
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    recorder = RecordSteps()
    summary = run_sft(*parse_args([*argv, "--resume_from_checkpoint", "true"]), callbacks=[recorder])
    assert recorder.steps == [3, 4]  # continues after checkpoint-2, does not restart at 1
    assert summary.steps == 4
    steps_logged = [h["step"] for h in log_history(out) if "loss" in h]
    assert steps_logged == [1, 2, 3, 4]


def test_cli_reports_config_errors_without_traceback(
    tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    argv = [
        "sft",
        "--config",
        str(CONFIG),
        "--model_name_or_path",
        str(tiny_llama_dir),
        "--output_dir",
        str(tmp_path),
    ]
    assert cli.main(argv) == 1
    assert "Set train_file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": []}\n')
    assert cli.main([*argv, "--train_file", str(bad)]) == 1
    assert f"{bad}:1" in capsys.readouterr().err
    no_dev = [*argv, "--train_file", str(sft_jsonl), "--eval_strategy", "steps"]
    assert cli.main(no_dev) == 1
    assert "set dev_file" in capsys.readouterr().err
    assert (
        cli.main(
            [
                *argv,
                "--train_file",
                str(sft_jsonl),
                "--loss_weight_infonce",
                "0",
                "--loss_weight_triplet",
                "0",
            ]
        )
        == 1
    )
    assert "never train" in capsys.readouterr().err


def test_cli_help_and_dispatch(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    assert cli.main(["--help"]) == 0
    assert "mine-negatives" in capsys.readouterr().out
    assert cli.main([]) == 2
    assert cli.main(["nope"]) == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["sft", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert (
        "--infonce_temperature" in help_text and "--learning_rate" in help_text and "examples:" in help_text
    )
    monkeypatch.setitem(cli.COMMANDS, "rl", "search_r3_train.rl_not_here.cli")
    assert cli.main(["rl"]) == 2
    assert "not installed" in capsys.readouterr().err
