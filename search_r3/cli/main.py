"""Entry point of the ``search-r3`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func`` default takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from search_r3 import __version__
from search_r3.cli import delete_cmd, demo_cmd, eval_cmd, index_cmd, init_cmd, search_cmd
from search_r3.errors import SearchR3Error

SUBCOMMANDS = [init_cmd, demo_cmd, index_cmd, search_cmd, delete_cmd, eval_cmd]

EPILOG = """examples:
  search-r3 init smollm2-135m-instruct ./my-model      # offline base -> untrained search-r3 model
  search-r3 init Qwen/Qwen2.5-1.5B-Instruct ./my-model   # any instruction-tuned LM from the Hub
  search-r3 demo                                         # index a demo corpus, search it with reasoning
  search-r3 index docs/ --model ./my-model               # embed files into the embedded Qdrant store
  search-r3 search "why does bread go stale?"            # reasoning, then ranked hits
  search-r3 delete --source docs/old.md                  # remove a file's documents
  search-r3 eval ../shared/data/cranfield --model ./my-model --max-reasoning-tokens 32

Run `search-r3 COMMAND --help` for each command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search-r3",
        description="Reasoning embeddings (Search-R3): make models, index, search and evaluate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"search-r3 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SearchR3Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
