"""The ``search-r3-train`` command: ``sft``, ``mine-negatives`` and ``rl`` subcommands.

Each subcommand owns its parser (``sft`` and ``rl`` parse dataclasses with ``trl.TrlParser``:
a flat YAML ``--config`` plus ``--field value`` overrides), so this module only dispatches.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from search_r3.errors import SearchR3Error

USAGE = """usage: search-r3-train COMMAND [options]

Train search-r3 reasoning embedding models.

commands:
  sft              stage 1: contrastive supervised fine-tuning (LM + KL + InfoNCE + triplet)
  build-data       reasoning-annotated training data from a collection (offline)
  build-general-data  the v2 recipe's data: collection + general text installed here (offline)
  mine-negatives   add hard negatives (BM25 or the current model) to training data
  pack-adapter     combine the LoRA adapters of both stages into one adapter to ship
  rl               stage 2: reinforcement learning (GRPO) with a retrieval reward

examples:
  search-r3-train sft --config configs/sft_smollm2_cpu.yaml --output_dir runs/sft
  search-r3-train sft --config my.yaml --learning_rate 5e-5 --max_steps 200
  search-r3-train build-data ../shared/data/cranfield -o runs/data/train.jsonl --title_queries
  search-r3-train mine-negatives --collection ../shared/data/cranfield --split train -o train.jsonl
  accelerate launch --config_file configs/accelerate/zero2.yaml -m search_r3_train sft --config my.yaml
  torchrun --nproc_per_node 2 -m search_r3_train sft --config my.yaml --use_cpu true

Run `search-r3-train COMMAND --help` for the options of a command. Errors print one line;
`search-r3-train --debug COMMAND ...` (or SEARCH_R3_DEBUG=1) shows the traceback instead.
"""

DEBUG_ENV = "SEARCH_R3_DEBUG"

RL_MISSING = (
    "error: the `rl` command is not installed in this copy of search-r3-train "
    "(module search_r3_train.rl.cli is missing); update the package."
)


def _load(module: str) -> Callable[[list[str]], int]:
    return importlib.import_module(module).main


COMMANDS = {
    "sft": "search_r3_train.sft",
    "build-data": "search_r3_train.build_data",
    "build-general-data": "search_r3_train.general_data",
    "mine-negatives": "search_r3_train.mine_negatives",
    "pack-adapter": "search_r3_train.pack_adapter",
    "rl": "search_r3_train.rl.cli",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a subcommand; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if args and args[0] == "--debug":
        debug, args = True, args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        from search_r3_train import __version__

        print(f"search-r3-train {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose from {', '.join(COMMANDS)}.\n", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # its index-building debug lines are noise
    try:
        run = _load(COMMANDS[command])
    except ModuleNotFoundError as exc:
        if command == "rl" and (exc.name or "").startswith("search_r3_train.rl"):
            print(RL_MISSING, file=sys.stderr)
            return 2
        raise
    try:
        return int(run(rest) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (SearchR3Error, OSError) as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug or a library failure: one line, the traceback with --debug
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with search-r3-train --debug "
            f"or {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
