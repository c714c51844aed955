"""Two real processes (torchrun, gloo on CPU): the run completes and uses cross-process negatives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from search_r3 import ReasoningEmbeddings

CONFIG = Path(__file__).resolve().parents[1] / "search_r3_train" / "configs" / "sft_tiny_cpu.yaml"


def test_two_process_run_gathers_documents_from_both(tiny_llama_dir: Path, sft_jsonl: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    batch, negatives = 2, 2
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "search_r3_train", "sft",
        "--config", str(CONFIG),
        "--model_name_or_path", str(tiny_llama_dir),
        "--train_file", str(sft_jsonl),
        "--dev_file", str(sft_jsonl),
        "--output_dir", str(out),
        "--use_cpu", "true",
        "--per_device_train_batch_size", str(batch),
        "--negatives_per_query", str(negatives),
        "--max_steps", "2", "--save_steps", "2", "--logging_steps", "1",
        "--eval_strategy", "steps", "--eval_steps", "2",
        "--text_max_length", "128",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    train_logs = [h for h in state["log_history"] if "loss" in h]
    assert len(train_logs) == 2
    local_docs = batch * (1 + negatives)
    # InfoNCE saw every document of both processes, not only its own
    assert all(h["infonce_candidates"] == 2 * local_docs for h in train_logs)
    assert any("eval_nDCG@10" in h for h in state["log_history"])
    assert done.stdout.count("search-r3-train sft finished") == 1  # one summary, from the main process
    ReasoningEmbeddings.from_pretrained(out, device="cpu").encode_documents(["a saved, loadable model"])
