"""``search-r3 eval``: nDCG@10, Recall@100 and MRR@10 for one or more models, baselines and BM25."""

from __future__ import annotations

import argparse
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_r3.cli.common import (
    add_json_option,
    add_model_options,
    existing_folder,
    load_model,
    metric_name,
    note,
    output_file,
    positive_int,
    print_json,
    resolve_model,
    show_progress,
)
from search_r3.errors import InvalidInputError, ModelLoadError
from search_r3.pretrained import PRETRAINED_MODELS

if TYPE_CHECKING:
    from search_r3.collections import Collection
    from search_r3.evaluation import EvalRow, RetrievalSetup
    from search_r3.model import ReasoningEmbeddings

EXAMPLES = """examples:
  search-r3 eval ../shared/data/cranfield --model ./my-model --max-reasoning-tokens 32
  search-r3 eval ../shared/data/cranfield --queries test --model search-r3-smollm2-135m \\
      --model runs/recipe/untrained --st-model sentence-transformers/all-MiniLM-L6-v2
  search-r3 eval ./cranfield --model trained=./runs/rl --model start=./runs/untrained  # row labels
  search-r3 eval ./beir/scifact --split test --json > scifact.json
  search-r3 eval ./trec-covid --queries test --reasoning off        # the project's fixed test split
  search-r3 eval ./cranfield --reasoning none                       # BM25 only: no model needed
  search-r3 eval ./cranfield --reasoning none --st-model ./all-MiniLM-L6-v2   # baselines only
  search-r3 eval ./cranfield --metrics nDCG@10 AP P@5 --max-queries 20
  search-r3 eval ./cranfield --queries test --budgets 0,8,16,32,64,128 --repeats 3 \
      --doc-cache ~/.cache/search-r3-eval
  search-r3 eval ./cranfield --queries dev --mode dense,sparse,hybrid --fusion rrf,dbsf \
      --rrf-weights 1:1,1:2,2:1 --reasoning-weight 0.25,0.5 --doc-cache ~/.cache/search-r3-eval

DATA is a folder in one of these layouts (detected automatically):
  BEIR     corpus.jsonl, queries.jsonl, qrels/<split>.tsv
  TREC     corpus.jsonl|tsv, topics (tsv, jsonl or <top> SGML), qrels (qid 0 docid rel)
  classic  .I/.T/.W records and a qrels file, as the Cranfield collection ships

Several --model and --st-model options compare systems in one table: each model is loaded,
evaluated (documents encoded once per model) and freed before the next one; BM25 comes last.
With one --model the rows read "search-r3 (reasoning, N tokens)" and "search-r3 (no reasoning)";
with several they read "LABEL: reasoning (N tokens)" and "LABEL: no reasoning", and baselines
read "sentence-transformers: LABEL". LABEL is the folder's name for a local folder, else the
value as given (a short name or Hub id); --model LABEL=PATH names a row yourself (split on the
first '=' only when LABEL has no '/' and PATH exists, holds a '/', starts with '.' or '~', or is a
shipped model's short name).

--mode dense (the default) ranks by cosine in numpy. Any other --mode list ranks every row
through a hybrid Qdrant store in a temporary folder (the engine and calls of `search-r3 search`):
"· dense", "· sparse" (BM25 over the query), "· sparse + reasoning xW" (query + the model's
reasoning, its tokens weighted W), "· hybrid rrf k=K w=D:S" and "· hybrid dbsf", each hybrid
without and with the reasoning expansion. Documents are encoded once; each query once per
reasoning mode. --doc-cache DIR keeps the document vectors for the next run (keyed by model
and texts). Choose fusion settings on --queries dev or train, never on test.

--budgets B,... sweeps the reasoning budget: one row per model and budget (0: reasoning off, else
greedy reasoning of at most B tokens), documents encoded once per model, with queries/s and the
most tokens any query generated; metrics nDCG@10 and Recall@100 unless --metrics says otherwise.
--repeats N times the budgets N times round-robin and keeps each one's fastest (on a busy machine).
It replaces --reasoning and --max-reasoning-tokens (dense mode).

Query rows time the query side only (corpus_seconds in --json holds the document encoding).
Metrics use ir-measures names (nDCG@10, R@100, RR@10, AP, P@5, ...); the table shows R@ as
Recall@ and RR@ as MRR@.
"""


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` or ``--st-model`` value: what to load and how its rows are named."""

    path: str
    label: str
    named: bool  # the label was given as LABEL=PATH


@dataclass(frozen=True)
class EvalOptions:
    """The options of one ``eval`` table, gathered once from the command line.

    Every row function gets the same depth, metrics and progress setting from here; the search-r3
    rows of each model come from `model_rows`, which picks the kind of rows the options ask for.

    Example:
        ```python
        options = EvalOptions(metrics=("nDCG@10",), k=10, reasoning_modes=(False,))
        rows = options.model_rows(embeddings, collection, label="base")
        ```
    """

    metrics: tuple[str, ...]
    k: int = 100
    show_progress_bar: bool | None = None
    reasoning_modes: tuple[bool, ...] = (True, False)
    max_reasoning_tokens: int | None = None
    #: Reasoning budgets of a sweep (``--budgets``); ``None``: one row per reasoning mode.
    budgets: tuple[int, ...] | None = None
    repeats: int = 1
    #: Store setups of ``--mode`` & co; ``None``: dense rows ranked in numpy.
    setups: tuple[RetrievalSetup, ...] | None = None
    doc_cache: Path | None = None

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        *,
        modes: tuple[bool, ...],
        setups: list[RetrievalSetup] | None,
        metrics: tuple[str, ...],
    ) -> EvalOptions:
        return cls(
            metrics=metrics,
            k=args.depth,
            show_progress_bar=show_progress(args),
            reasoning_modes=modes,
            max_reasoning_tokens=args.max_reasoning_tokens,
            budgets=None if args.budgets is None else tuple(args.budgets),
            repeats=args.repeats,
            setups=None if setups is None else tuple(setups),
            doc_cache=args.doc_cache,
        )

    def common(self, label: str | None) -> dict[str, Any]:
        """The keywords every row function takes: ``label``, ``metrics``, ``k``, ``show_progress_bar``."""
        return {
            "label": label,
            "metrics": self.metrics,
            "k": self.k,
            "show_progress_bar": self.show_progress_bar,
        }

    def model_rows(
        self, embeddings: ReasoningEmbeddings, collection: Collection, *, label: str | None
    ) -> list[EvalRow]:
        """One search-r3 model's rows: a budget sweep, dense rows in numpy, or rows through the store."""
        from search_r3.evaluation import budget_rows, search_r3_rows, store_rows

        common = self.common(label)
        if self.budgets is not None:
            return budget_rows(
                embeddings, collection, self.budgets, doc_cache=self.doc_cache, repeats=self.repeats, **common
            )
        common.update(reasoning_modes=self.reasoning_modes, max_reasoning_tokens=self.max_reasoning_tokens)
        if self.setups is None:
            return search_r3_rows(embeddings, collection, **common)
        return store_rows(embeddings, collection, self.setups, doc_cache=self.doc_cache, **common)


def looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith((".", "~"))


def parse_model_spec(value: str) -> ModelSpec:
    """``PATH`` or ``LABEL=PATH``; the default label is a local folder's name, else the value."""
    label, sep, path = value.partition("=")
    if (
        sep
        and label
        and not looks_like_path(label)
        and path
        and not Path(value).expanduser().exists()
        and (Path(path).expanduser().exists() or looks_like_path(path) or path in PRETRAINED_MODELS)
    ):
        return ModelSpec(path=path, label=label, named=True)
    local = Path(value).expanduser()
    return ModelSpec(path=value, label=local.resolve().name if local.exists() else value, named=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate retrieval on a BEIR, TREC or Cranfield-style collection",
        description="Evaluate search-r3 models with reasoning on and off against sentence-transformers "
        "and BM25 baselines, in one table.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", type=existing_folder, metavar="DATA", help="collection folder")
    parser.add_argument("--split", default="test", help="BEIR qrels split to read (default: test)")
    parser.add_argument(
        "--queries",
        choices=["all", "train", "dev", "test"],
        default="all",
        help="evaluate all judged queries or one part of the fixed 50/20/30 split (seed 13)",
    )
    parser.add_argument(
        "--max-queries", type=positive_int, default=None, help="only the first N judged queries"
    )
    parser.add_argument(
        "--reasoning",
        choices=["both", "on", "off", "none"],
        default="both",
        help="search-r3 rows: reasoning on and off (default), one of them, or none (no search-r3 model)",
    )
    parser.add_argument(
        "--budgets",
        type=budget_list,
        default=None,
        metavar="B,...",
        help="sweep the reasoning budget: one row per budget in tokens (0: reasoning off), e.g. 0,8,16,32",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="with --budgets: time each budget this many times, round-robin, and keep the fastest",
    )
    parser.add_argument("--no-bm25", action="store_true", help="leave out the BM25 row")
    parser.add_argument(
        "--keep-line-breaks",
        action="store_true",
        help="classic-format documents keep their original line breaks (default: joined lines)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        type=metric_name,
        default=None,
        help="ir-measures names (default: nDCG@10 R@100 RR@10)",
    )
    parser.add_argument(
        "-k", "--depth", type=positive_int, default=100, help="documents ranked per query (default 100)"
    )
    parser.add_argument(
        "--output", type=output_file, default=None, help="also write the table (or JSON) to this file"
    )
    add_retrieval_options(parser)
    add_json_option(parser)
    group = add_model_options(parser, repeat=True)  # one table, several models
    group.add_argument(
        "--st-model",
        action="append",
        default=None,
        metavar="[LABEL=]MODEL",
        help="sentence-transformers model folder or Hub id for a baseline row; repeatable",
    )
    parser.set_defaults(func=run)


def budget_list(value: str) -> list[int]:
    """``--budgets``: a comma list of distinct whole numbers >= 0 (an argparse type)."""
    from search_r3.evaluation import parse_budgets

    try:
        return parse_budgets(value)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def check_budget_options(args: argparse.Namespace) -> None:
    """``--budgets`` sets reasoning per row: refuse the options it replaces, before any loading."""
    if args.budgets is None:
        if args.repeats != 1:
            raise InvalidInputError("--repeats times a budget sweep; add --budgets or leave it out.")
        return
    if args.max_reasoning_tokens is not None:
        raise InvalidInputError("--budgets sets the budget of each row; leave out --max-reasoning-tokens.")
    if args.reasoning not in ("both",):
        raise InvalidInputError(
            f"--budgets sets reasoning per row (0: off); leave out --reasoning {args.reasoning}."
        )
    if args.mode.strip() != "dense":
        raise InvalidInputError("--budgets runs dense rows only; leave out --mode (or use --mode dense).")


def add_retrieval_options(parser: argparse.ArgumentParser) -> None:
    """``--mode``, ``--fusion`` and the fusion grid of the search-r3 rows."""
    group = parser.add_argument_group("retrieval modes (search-r3 rows)")
    group.add_argument("--mode", default="dense", help="comma list of dense, sparse, hybrid (default: dense)")
    group.add_argument("--fusion", default="rrf,dbsf", help="hybrid fusions: rrf, dbsf (default: both)")
    group.add_argument(
        "--rrf-weights",
        default="2:1",
        metavar="D:S,...",
        help="RRF weights of the dense and sparse rankings, one row each (default 2:1)",
    )
    group.add_argument("--rrf-k", default="61", metavar="K,...", help="Qdrant RRF constant(s) (default 61)")
    group.add_argument(
        "--reasoning-weight",
        default="0.25",
        metavar="W,...",
        help="weight of the reasoning tokens in the sparse query, one row each (query tokens: 1)",
    )
    group.add_argument(
        "--prefetch", type=int, default=100, help="candidates per side before fusion (default 100)"
    )
    group.add_argument(
        "--doc-cache", type=Path, default=None, help="folder to keep document vectors in between runs"
    )


def _split(value: str, option: str, cast: Any, allowed: tuple[str, ...] | None = None) -> list[Any]:
    from search_r3.errors import InvalidInputError

    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        out = [cast(v) for v in items]
    except ValueError as exc:
        raise InvalidInputError(f"{option} {value!r}: {exc}") from exc
    if not out or (allowed and any(v not in allowed for v in out)):
        raise InvalidInputError(
            f"{option} {value!r}: give a comma list of {', '.join(allowed or ('values',))}."
        )
    return out


def _weights(value: str) -> tuple[float, float]:
    dense, sep, sparse = value.partition(":")
    if not sep:
        raise ValueError(f"write DENSE:SPARSE weights such as 1:2, not {value!r}")
    return float(dense), float(sparse)


def retrieval_setups_from_args(args: argparse.Namespace) -> list[Any] | None:
    """The setups of ``--mode`` & co; ``None`` for plain dense rows (the numpy path)."""
    from search_r3.evaluation import retrieval_setups
    from search_r3.store import FUSIONS, MODES, HybridSettings

    modes = _split(args.mode, "--mode", str, MODES)
    if modes == ["dense"]:
        return None
    return retrieval_setups(
        modes,
        fusions=_split(args.fusion, "--fusion", str, FUSIONS),
        rrf_weights=_split(args.rrf_weights, "--rrf-weights", _weights),
        rrf_ks=_split(args.rrf_k, "--rrf-k", int),
        reasoning_weights=_split(args.reasoning_weight, "--reasoning-weight", float),
        base=HybridSettings(prefetch=args.prefetch),
    )


def load_sentence_transformer(path: str, device: str | None) -> Any:
    """A ``SentenceTransformer`` (no remote code), with a clear error when it cannot be loaded."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not load the sentence-transformers model {path!r}: {exc}. Pass a local model folder, "
            "or a Hub id such as sentence-transformers/all-MiniLM-L6-v2 (downloads it once, needs internet)."
        ) from exc


def release_memory() -> None:
    """Give a dropped model's memory back before the next model loads."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(args: argparse.Namespace) -> int:
    from search_r3.collections import load_collection, split_queries
    from search_r3.evaluation import (
        BUDGET_METRICS,
        DEFAULT_METRICS,
        bm25_row,
        format_budget_table,
        format_table,
        sentence_transformer_row,
    )

    check_budget_options(args)
    collection = load_collection(args.data, split=args.split, keep_line_breaks=args.keep_line_breaks)
    if args.queries != "all":
        collection = split_queries(collection)[args.queries]
    judged = collection.judged_query_ids()
    if args.max_queries:
        judged = judged[: args.max_queries]
    collection = collection.subset(judged)
    metrics = tuple(args.metrics or (BUDGET_METRICS if args.budgets is not None else DEFAULT_METRICS))
    setups = retrieval_setups_from_args(args)
    modes = {"both": (True, False), "on": (True,), "off": (False,), "none": ()}[args.reasoning]
    models = [parse_model_spec(v) for v in args.model or []] if modes else []
    st_models = [parse_model_spec(v) for v in args.st_model or []]
    if args.model and not modes:
        note(args, "--reasoning none: the --model options are not evaluated")
    if modes and not models:
        try:
            models = [ModelSpec(path=resolve_model(args), label="search-r3", named=False)]
        except ModelLoadError as exc:
            raise ModelLoadError(f"{exc} For baseline rows only, pass --reasoning none.") from exc
    if not models and not st_models and args.no_bm25:
        raise InvalidInputError(
            "Nothing to evaluate: no model rows (--reasoning none) and --no-bm25; drop one of them."
        )
    for kind, specs in (("--model", models), ("--st-model", st_models)):
        labels = [spec.label for spec in specs]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise InvalidInputError(
                f"Two {kind} values share the row label {repeated[0]!r}; name them {kind} LABEL=PATH."
            )
    # One model keeps the one-model row names unless a label was asked for.
    single = len(models) == 1 and not models[0].named
    note(args, f"{collection.name}: {len(collection.corpus)} documents, {len(judged)} judged queries")

    options = EvalOptions.from_args(args, modes=modes, setups=setups, metrics=metrics)
    rows = []
    evaluated: list[dict[str, Any]] = []
    for spec in models:
        embeddings = load_model(argparse.Namespace(**{**vars(args), "model": spec.path}))
        model_rows = options.model_rows(embeddings, collection, label=None if single else spec.label)
        rows += model_rows
        evaluated.append(
            {
                "kind": "search-r3",
                "label": spec.label,
                "model": spec.path,
                "name_or_path": str(getattr(embeddings.model, "name_or_path", "") or spec.path),
                "systems": [row.system for row in model_rows],
            }
        )
        del embeddings
        release_memory()
    for spec in st_models:
        note(args, f"loading sentence-transformers model {spec.path}")
        st_model = load_sentence_transformer(spec.path, args.device)
        row = sentence_transformer_row(st_model, collection, **options.common(spec.label))
        rows.append(row)
        evaluated.append(
            {
                "kind": "sentence-transformers",
                "label": spec.label,
                "model": spec.path,
                "systems": [row.system],
            }
        )
        del st_model
        release_memory()
    if not args.no_bm25:
        rows.append(bm25_row(collection, metrics=options.metrics, k=options.k))

    if args.json:
        payload = {
            "collection": collection.name,
            "data": str(args.data),
            "queries": len(judged),
            "documents": len(collection.corpus),
            # the one search-r3 model's name (as before); every model is listed in "models"
            "model": evaluated[0]["name_or_path"] if len(models) == 1 else None,
            "models": evaluated,
            "rows": [row.to_dict() for row in rows],
        }
        print_json(payload)
        text = format_table(rows, "json")
    else:
        text = format_table(rows) if args.budgets is None else format_budget_table(rows)
        print(f"{collection.name}: {len(judged)} queries, {len(collection.corpus)} documents")
        print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0
