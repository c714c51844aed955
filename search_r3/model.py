"""``ReasoningEmbeddings``: encode documents in one pass and queries after a short reasoning."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from search_r3.decoding import DecodeRules, SamplingOptions, reason_and_embed, shared_prefix_length
from search_r3.devices import default_batch_tokens, default_device
from search_r3.loading import load_model_and_tokenizer, secure_embed_token
from search_r3.pooling import backbone_of, embed_forward, pad_batch
from search_r3.pretrained import resolve_model_source
from search_r3.prompts import PromptBuilder
from search_r3.saving import save_model_folder
from search_r3.settings import SearchR3Settings, check_count
from search_r3.speculation import DEFAULT_SPECULATIVE_TOKENS

if TYPE_CHECKING:
    from search_r3.query_cache import QueryCache

logger = logging.getLogger(__name__)


@dataclass
class QueryEncodings:
    """What `ReasoningEmbeddings.encode_queries` returns.

    Attributes:
        embeddings: ``(n, dim)`` float32 array, L2-normalised unless the model says otherwise.
        reasoning: The reasoning text written for each query (empty when reasoning is off).
        forced: For each query, whether the budget ran out (or the turn ended) before the model
            emitted the embed token, so the closing text and token were appended.
        generated_tokens: Number of reasoning tokens generated per query.
    """

    embeddings: np.ndarray
    reasoning: list[str] = field(default_factory=list)
    forced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    generated_tokens: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.embeddings)


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small.

    A batch holds at most ``batch_size`` rows and, if ``max_tokens`` is set, at most that many
    padded tokens (rows x its longest row); a row longer than ``max_tokens`` goes alone.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        # Sorted longest first, so the batch's first row sets its padded width.
        full = len(batch) >= batch_size or (
            max_tokens is not None and batch and (len(batch) + 1) * lengths[batch[0]] > max_tokens
        )
        if full:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class ReasoningEmbeddings:
    """A search-r3 model: a causal LM whose hidden state at ``<|embed_token|>`` is the embedding.

    Build it with `from_pretrained`, or wrap a loaded model and tokenizer directly.

    Example:
        ```python
        emb = ReasoningEmbeddings.from_pretrained("path/to/model", device="cpu")
        docs = emb.encode_documents(["Paris is the capital of France."])
        res = emb.encode_queries(["which city hosts the Louvre?"], max_reasoning_tokens=64)
        scores = res.embeddings @ docs.T
        ```
    """

    #: KV backend of reasoning: "auto" (preallocated slots for Llama-layout models, else the
    #: transformers cache), "slots" or "transformers" (see ``search_r3.decoding.decode_backend``).
    decode_backend: str = "auto"

    @property
    def speculative_tokens(self) -> int:
        """Most tokens drafted per decoding step by prompt lookup (``search_r3.speculation``); 0: off.

        Used when queries decode greedily on the slots backend (``encode_queries``, a
        ``QueryEngine``): a lone row drafts up to this many, several rows fewer each
        (``search_r3.speculation.draft_limit``: 1 each from 5 rows on); one forward checks every
        row's drafted tokens and each row keeps those greedy decoding picks anyway. The
        reasoning and the embedding are the same either way; only the number of forward passes
        changes. A whole number >= 0, else ``InvalidInputError``.

        Example:
            ```python
            emb.speculative_tokens = 0  # one token per forward, as before
            ```
        """
        return self.__dict__.get("_speculative_tokens", DEFAULT_SPECULATIVE_TOKENS)

    @speculative_tokens.setter
    def speculative_tokens(self, value: int) -> None:
        self._speculative_tokens = check_count("speculative_tokens", value, 0)

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: SearchR3Settings | None = None,
        *,
        max_length: int | None = None,
        reasoning: bool = True,
        max_reasoning_tokens: int | None = None,
        batch_size: int = 16,
        max_batch_tokens: int | None = None,
        query_cache: QueryCache | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings or SearchR3Settings.from_model_config(model.config)
        secure_embed_token(tokenizer, self.settings.embed_token)
        self.prompts = PromptBuilder(tokenizer, self.settings)
        self.max_length = (
            self.settings.max_length if max_length is None else check_count("max_length", max_length, 1)
        )
        self.reasoning = reasoning
        budget = self.settings.max_reasoning_tokens if max_reasoning_tokens is None else max_reasoning_tokens
        self.max_reasoning_tokens = self.checked_budget(budget)
        self.batch_size = check_count("batch_size", batch_size, 1)
        self._max_batch_tokens = (
            None if max_batch_tokens is None else check_count("max_batch_tokens", max_batch_tokens, 1)
        )
        self.embed_id = self.prompts.embed_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.model.eval()
        #: Optional ``search_r3.query_cache.QueryCache``: repeated queries skip their reasoning.
        self.query_cache = query_cache

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> ReasoningEmbeddings:
        """Load a search-r3 model from a local folder or a Hugging Face Hub id.

        A folder holding a LoRA adapter (``adapter_config.json``) is loaded onto its base model.
        Weights are read from safetensors only; no code from the model repository runs.

        Args:
            model_name_or_path: Local folder, Hub id (e.g. ``ytgui/Search-R3.0-Small``), or the
                short name of a model shipped with search-r3 (``search-r3-smollm2-135m``).
            device: ``"cpu"``, ``"cuda"``, ``"mps"``...; default: the best this machine has.
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or a torch dtype; default:
                bfloat16 on GPUs that support it, float32 otherwise.
            **kwargs: Passed to the constructor (``max_length``, ``reasoning``,
                ``max_reasoning_tokens``, ``batch_size``, ``max_batch_tokens``).
        """
        device = device or default_device()
        hub = {"revision": revision, "token": token, "local_files_only": local_files_only}
        source = resolve_model_source(str(model_name_or_path))
        model, tokenizer = load_model_and_tokenizer(source, device=device, dtype=dtype, hub=hub)
        return cls(model, tokenizer, **kwargs)

    def save_pretrained(self, output: str | os.PathLike[str]) -> Path:
        """Save as a search-r3 folder (safetensors, tokenizer, settings, sentence-transformers files)."""
        return save_model_folder(self.model, self.tokenizer, self.settings, output)

    # -- argument checks --------------------------------------------------------------------
    def checked_budget(self, value: Any) -> int:
        """A reasoning budget: a whole number >= 0, cut to what the model's positions allow.

        Prompt (at most ``max_length``) + reasoning + forced closing must fit the model's
        position limit; a larger budget is lowered with a warning instead of generating past it.
        """
        budget = check_count("max_reasoning_tokens", value, 0)
        positions = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        if positions:
            room = int(positions) - self.max_length - len(self.prompts.forced_ids)
            if budget > room:
                room = max(room, 0)
                logger.warning(
                    "max_reasoning_tokens=%d does not fit the model's %d positions after a prompt of up to "
                    "max_length=%d tokens; using %d (lower max_length for a longer budget).",
                    budget,
                    positions,
                    self.max_length,
                    room,
                )
                budget = room
        return budget

    # -- properties -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embedding_dimension(self) -> int:
        """Size of the vectors (the model's hidden size)."""
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def max_batch_tokens(self) -> int:
        """Most padded tokens per document forward pass; by default it suits the model's device."""
        return self._max_batch_tokens or default_batch_tokens(str(self.device))

    @max_batch_tokens.setter
    def max_batch_tokens(self, value: int | None) -> None:
        self._max_batch_tokens = value

    @property
    def max_length(self) -> int:
        """Most tokens a text may take; longer ones are truncated with a warning."""
        return self.prompts.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        value = check_count("max_length", value, 1)
        limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        if limit and value > limit:
            logger.warning("max_length=%d is above the model's %d positions; using %d.", value, limit, limit)
            value = limit
        self.prompts.max_length = int(value)

    # -- low level: one implementation shared by every front end ----------------------------
    def embed_prompt_ids(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Embeddings of prompts that already end in the embed token: one forward pass."""
        # Right padding whatever the tokenizer says: the vectors are the same either way, and it
        # lets the causal attention run without a padding mask (see embed_forward).
        ids, mask = pad_batch(prompts, self.pad_id, side="right")
        with torch.inference_mode():
            return embed_forward(
                backbone_of(self.model),
                ids.to(self.device),
                mask.to(self.device),
                self.embed_id,
                self.settings.normalize,
            ).cpu()

    def reason_prompt_ids(
        self,
        prompts: Sequence[Sequence[int]],
        max_reasoning_tokens: int | None = None,
        sampling: SamplingOptions | None = None,
        *,
        batch_size: int | None = None,
        on_done: Callable[[int], Any] | None = None,
    ) -> QueryEncodings:
        """Generate reasoning for reasoning prompts and embed at the token.

        Args:
            batch_size: Most prompts decoding at once (default: all of them).
            on_done: Called with the number of prompts finished, after each step that ends some.
        """
        decoded = reason_and_embed(
            self.model,
            prompts,
            embed_id=self.embed_id,
            stop_ids=self._stop_ids(),
            pad_id=self.pad_id,
            forced_ids=self.prompts.forced_ids,
            max_new_tokens=self.max_reasoning_tokens
            if max_reasoning_tokens is None
            else max_reasoning_tokens,
            sampling=sampling,
            normalize=self.settings.normalize,
            closing_ids=self.prompts.closing_ids[:-1],
            no_repeat_ngram_size=self.settings.no_repeat_ngram_size,
            prefix=self.reasoning_head_ids(),
            backend=self.decode_backend,
            max_batch_size=batch_size,
            on_done=on_done,
            speculative_tokens=self.speculative_tokens,
        )
        return self.query_encodings(decoded.generated_ids, decoded.forced, decoded.embeddings)

    def decode_rules(self, sampling: SamplingOptions | None = None) -> DecodeRules:
        """The decoding rules of this model's reasoning (the engine decodes with them too)."""
        return DecodeRules(
            embed_id=self.embed_id,
            stop_ids=self._stop_ids(),
            forced_ids=self.prompts.forced_ids,
            closing_ids=self.prompts.closing_ids[:-1],
            no_repeat_ngram_size=self.settings.no_repeat_ngram_size,
            sampling=sampling,
            normalize=self.settings.normalize,
        )

    def reasoning_head_ids(self) -> list[int]:
        """The head every reasoning prompt starts with (chat template and instruction)."""
        head = self.__dict__.get("_reasoning_head")
        if head is None:
            a, b = (self.prompts.reasoning_prompt_ids(t) for t in ("a", "b"))
            head = self._reasoning_head = list(a[: shared_prefix_length([a, b])])
        return head

    def query_encodings(
        self, generated: Sequence[Sequence[int]], forced: Sequence[bool], embeddings: torch.Tensor
    ) -> QueryEncodings:
        """Reasoning ids, forced flags and vectors of decoded rows as a ``QueryEncodings``."""
        texts = [
            self.prompts.strip_closing(self.tokenizer.decode(ids, skip_special_tokens=True))
            for ids in generated
        ]
        return QueryEncodings(
            embeddings=embeddings.numpy(),
            reasoning=texts,
            forced=np.array(forced, dtype=bool),
            generated_tokens=[len(ids) for ids in generated],
        )

    def _stop_ids(self) -> list[int]:
        stops = {self.embed_id}
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        for value in (eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                stops.add(value)
            elif value:
                stops.update(int(v) for v in value)
        return sorted(stops)

    # -- public encoding API ----------------------------------------------------------------
    def encode_documents(
        self,
        documents: Sequence[str],
        *,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        """Embed documents (no reasoning): ``(n, dim)`` float32 array.

        Args:
            batch_size: Most documents per forward pass (default: the instance's).
            max_batch_tokens: Most padded tokens per forward pass (default: the instance's,
                which depends on the device: small on CPUs, where big batches run slower).
        """
        if batch_size is not None:
            check_count("batch_size", batch_size, 1)
        if max_batch_tokens is not None:
            check_count("max_batch_tokens", max_batch_tokens, 1)
        prompts = self.prompts.build(documents, "document")
        return self._encode_direct(prompts, batch_size, max_batch_tokens, show_progress_bar)

    def encode_queries(
        self,
        queries: Sequence[str],
        *,
        reasoning: bool | None = None,
        max_reasoning_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        use_cache: bool = True,
    ) -> QueryEncodings:
        """Embed queries, by default after a short reasoning (greedy, reproducible).

        Args:
            reasoning: Reason before embedding (default: the instance's ``reasoning``).
            max_reasoning_tokens: Budget of generated tokens; rows that hit it are ``forced``.
            do_sample, temperature, top_p, seed: Sampling instead of greedy decoding.
            use_cache: Look queries up in the instance's ``query_cache`` (if it has one) first.
        """
        if batch_size is not None:
            check_count("batch_size", batch_size, 1)
        if max_reasoning_tokens is not None:
            max_reasoning_tokens = self.checked_budget(max_reasoning_tokens)
        if use_cache and self.query_cache is not None:
            return self.query_cache.encode_queries(
                self,
                queries,
                reasoning=reasoning,
                max_reasoning_tokens=max_reasoning_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
            )
        reasoning = self.reasoning if reasoning is None else reasoning
        if not reasoning:
            prompts = self.prompts.build(queries, "query")
            vectors = self._encode_direct(prompts, batch_size, None, show_progress_bar)
            n = len(vectors)
            return QueryEncodings(vectors, [""] * n, np.zeros(n, dtype=bool), [0] * n)
        prompts = self.prompts.build(queries, "reasoning")
        sampling = SamplingOptions(do_sample, temperature, top_p, seed)
        # Longest first, at most batch_size rows decoding at once; a row that finishes makes room
        # for the next prompt at once (on the transformers cache: when the whole batch is done).
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        show = len(prompts) > 4 if show_progress_bar is None else show_progress_bar
        with tqdm(total=len(prompts), desc="Reasoning", unit="query", disable=not show) as bar:
            result = self.reason_prompt_ids(
                [prompts[i] for i in order],
                max_reasoning_tokens,
                sampling,
                batch_size=batch_size or self.batch_size,
                on_done=bar.update,
            )
        back = np.argsort(order)
        return QueryEncodings(
            embeddings=result.embeddings[back] if len(prompts) else self._empty(),
            reasoning=[result.reasoning[j] for j in back],
            forced=result.forced[back] if len(prompts) else np.zeros(0, dtype=bool),
            generated_tokens=[result.generated_tokens[j] for j in back],
        )

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Documents as plain lists of floats (the shape RAG frameworks expect)."""
        return self.encode_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """One query as a list of floats, reasoning as configured on the instance."""
        return self.encode_queries([text]).embeddings[0].tolist()

    # -- helpers ----------------------------------------------------------------------------
    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.embedding_dimension), dtype=np.float32)

    def _encode_direct(
        self,
        prompts: list[list[int]],
        batch_size: int | None,
        max_batch_tokens: int | None,
        show_progress_bar: bool | None,
    ) -> np.ndarray:
        if not prompts:
            return self._empty()
        out = np.zeros((len(prompts), self.embedding_dimension), dtype=np.float32)
        batches = list(
            length_sorted_batches(
                [len(p) for p in prompts],
                batch_size or self.batch_size,
                max_batch_tokens or self.max_batch_tokens,
            )
        )
        for batch in self._progress(batches, show_progress_bar, len(prompts) > 256, "Encoding"):
            out[batch] = self.embed_prompt_ids([prompts[i] for i in batch]).numpy()
        return out

    @staticmethod
    def _progress(batches: list[list[int]], show: bool | None, default: bool, desc: str) -> Any:
        show = default if show is None else show
        return tqdm(batches, desc=desc, unit="batch", disable=not show)

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "?")
        return f"ReasoningEmbeddings({name!r}, dim={self.embedding_dimension}, device={self.device})"
