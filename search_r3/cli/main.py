"""Entry point of the ``search-r3`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func`` default takes the parsed arguments and returns an exit code.

Errors: argument mistakes fail while parsing (the subcommand's usage and one ``error:`` line,
exit 2), before any model loads. Errors search-r3 raises on purpose (``SearchR3Error``) and
operating-system errors (a missing or read-only file) print one ``error:`` line, exit 1. Anything
else is a bug: one line that says so, exit 1, and ``--debug`` (or ``SEARCH_R3_DEBUG=1``) shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from search_r3 import __version__
from search_r3.cli import (
    delete_cmd,
    demo_cmd,
    eval_cmd,
    index_cmd,
    init_cmd,
    search_cmd,
    serve_cmd,
    store_cmd,
)
from search_r3.cli.common import check_store_choice
from search_r3.errors import SearchR3Error

DEBUG_ENV = "SEARCH_R3_DEBUG"

SUBCOMMANDS = [init_cmd, demo_cmd, index_cmd, search_cmd, delete_cmd, eval_cmd, serve_cmd, store_cmd]

EPILOG = """examples:
  search-r3 init smollm2-135m-instruct ./my-model      # offline base -> untrained search-r3 model
  search-r3 init Qwen/Qwen2.5-1.5B-Instruct ./my-model   # any instruction-tuned LM from the Hub
  search-r3 demo                                         # index a demo corpus, search it with reasoning
  search-r3 index docs/ --model ./my-model               # embed files into the embedded Qdrant store
  search-r3 search "why does bread go stale?"            # reasoning, then ranked hits
  search-r3 delete --source docs/old.md                  # remove a file's documents
  search-r3 eval ../shared/data/cranfield --model ./my-model --max-reasoning-tokens 32
  search-r3 serve --model ./my-model                     # OpenAI-compatible embeddings server
  search-r3 store migrate OLD_FOLDER NEW_FOLDER          # copy a store to the embedded engine

Run `search-r3 COMMAND --help` for each command's options and examples.
"""


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that never guesses: no prefix matching of long options.

    With prefix matching ``--mode`` would silently mean ``--model``; here an option must be
    spelled in full. Subcommand parsers are made with this class too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="search-r3",
        description="Reasoning embeddings (Search-R3): make models, index, search and evaluate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"search-r3 {__version__}")
    add_output_options(parser, False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    for sub in subparsers.choices.values():  # also accepted after the command name
        add_output_options(sub, argparse.SUPPRESS)
        for action in sub._actions:  # and after an action name (``store migrate``)
            if isinstance(action, argparse._SubParsersAction):
                for nested in action.choices.values():
                    add_output_options(nested, argparse.SUPPRESS)
    return parser


def add_output_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v, -q and --debug; subcommands use SUPPRESS so they never reset the top-level value."""
    group = parser.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="log debug messages")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="only results and errors: no notes or progress",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help=f"show the traceback of an unexpected error (or set ${DEBUG_ENV}=1)",
    )


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported by the subcommand's parser (with its usage)."""
    args, extras = parser.parse_known_args(argv)
    sub = _subparser(parser, getattr(args, "command", None)) or parser
    if extras:
        sub.error(f"unrecognized arguments: {' '.join(extras)}")
    check_store_choice(sub, args)
    return args


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command:
            return action.choices.get(command)
    return None


def configure_logging(verbose: bool, quiet: bool) -> None:
    """WARNING by default (ERROR with --quiet, DEBUG with -v), for every library.

    The level is set on the handler too: some libraries (bm25s) set their own logger to DEBUG,
    which the root level alone would let through.
    """
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    from transformers.utils import logging as transformers_logging  # its weight-loading bars

    if quiet:
        transformers_logging.disable_progress_bar()
    else:
        transformers_logging.enable_progress_bar()


def one_line(exc: BaseException) -> str:
    """The exception's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    configure_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (SearchR3Error, OSError) as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)} (a search-r3 bug: rerun with "
            f"--debug or {DEBUG_ENV}=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
