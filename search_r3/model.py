"""``ReasoningEmbeddings``: encode documents in one pass and queries after a short reasoning."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

from search_r3.decoding import SamplingOptions, reason_and_embed
from search_r3.devices import default_batch_tokens, default_device, resolve_dtype
from search_r3.errors import ModelLoadError
from search_r3.pooling import backbone_of, embed_forward, pad_batch
from search_r3.pretrained import resolve_model_source
from search_r3.prompts import PromptBuilder
from search_r3.saving import save_model_folder
from search_r3.settings import SearchR3Settings

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
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings or SearchR3Settings.from_model_config(model.config)
        self.prompts = PromptBuilder(tokenizer, self.settings)
        self.max_length = max_length or self.settings.max_length
        self.reasoning = reasoning
        self.max_reasoning_tokens = max_reasoning_tokens or self.settings.max_reasoning_tokens
        self.batch_size = batch_size
        self._max_batch_tokens = max_batch_tokens
        self.embed_id = self.prompts.embed_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.model.eval()

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
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or default_device()
        torch_dtype = resolve_dtype(dtype, device)
        hub = {"revision": revision, "token": token, "local_files_only": local_files_only}
        source = resolve_model_source(str(model_name_or_path))
        _check_local_source(source)
        adapter_base = _adapter_base(source)
        # An adapter folder normally carries the tokenizer (with the embed token); else use the base's.
        tokenizer_source = source if not adapter_base or _has_tokenizer(source) else adapter_base
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=False, **hub)
            if adapter_base and _adapter_base(adapter_base):  # an adapter trained on an adapter: merge both
                model = cls.from_pretrained(adapter_base, device="cpu", dtype=torch_dtype, **hub).model
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    adapter_base or source,
                    dtype=torch_dtype,
                    use_safetensors=True,
                    trust_remote_code=False,
                    **hub,
                )
            if adapter_base:
                model = _apply_adapter(model, source, len(tokenizer), hub)
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
            raise ModelLoadError(
                f"Could not load a search-r3 model from {source!r}: {exc}\n"
                "Check the path or Hub id; a local folder needs config.json, tokenizer files and "
                "*.safetensors weights (make one with `search-r3 init BASE OUTPUT`). A damaged file "
                "(e.g. an interrupted download or copy) must be fetched or written again."
            ) from exc
        model.to(device)
        return cls(model, tokenizer, **kwargs)

    def save_pretrained(self, output: str | os.PathLike[str]) -> Path:
        """Save as a search-r3 folder (safetensors, tokenizer, settings, sentence-transformers files)."""
        return save_model_folder(self.model, self.tokenizer, self.settings, output)

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
    ) -> QueryEncodings:
        """Generate reasoning for reasoning prompts and embed at the token, one batch."""
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
        )
        texts = [
            self.prompts.strip_closing(self.tokenizer.decode(ids, skip_special_tokens=True))
            for ids in decoded.generated_ids
        ]
        return QueryEncodings(
            embeddings=decoded.embeddings.numpy(),
            reasoning=texts,
            forced=np.array(decoded.forced, dtype=bool),
            generated_tokens=[len(ids) for ids in decoded.generated_ids],
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
    ) -> QueryEncodings:
        """Embed queries, by default after a short reasoning (greedy, reproducible).

        Args:
            reasoning: Reason before embedding (default: the instance's ``reasoning``).
            max_reasoning_tokens: Budget of generated tokens; rows that hit it are ``forced``.
            do_sample, temperature, top_p, seed: Sampling instead of greedy decoding.
        """
        reasoning = self.reasoning if reasoning is None else reasoning
        if not reasoning:
            prompts = self.prompts.build(queries, "query")
            vectors = self._encode_direct(prompts, batch_size, None, show_progress_bar)
            n = len(vectors)
            return QueryEncodings(vectors, [""] * n, np.zeros(n, dtype=bool), [0] * n)
        prompts = self.prompts.build(queries, "reasoning")
        sampling = SamplingOptions(do_sample, temperature, top_p, seed)
        parts: dict[int, QueryEncodings] = {}
        batches = list(length_sorted_batches([len(p) for p in prompts], batch_size or self.batch_size))
        for batch in self._progress(batches, show_progress_bar, len(prompts) > 4, "Reasoning"):
            result = self.reason_prompt_ids([prompts[i] for i in batch], max_reasoning_tokens, sampling)
            for j, i in enumerate(batch):
                parts[i] = QueryEncodings(
                    result.embeddings[j : j + 1],
                    [result.reasoning[j]],
                    result.forced[j : j + 1],
                    [result.generated_tokens[j]],
                )
        ordered = [parts[i] for i in range(len(prompts))]
        return QueryEncodings(
            embeddings=np.concatenate([p.embeddings for p in ordered]) if ordered else self._empty(),
            reasoning=[p.reasoning[0] for p in ordered],
            forced=np.concatenate([p.forced for p in ordered]) if ordered else np.zeros(0, dtype=bool),
            generated_tokens=[p.generated_tokens[0] for p in ordered],
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


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _check_local_source(source: str) -> None:
    """Clear errors for a local path that is missing or holds only pickle weights."""
    path = Path(source).expanduser()
    if not path.exists():
        if path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
            raise ModelLoadError(
                f"No model folder at {source!r}. Pass an existing folder (make one with "
                "`search-r3 init BASE OUTPUT`) or a Hugging Face Hub id such as 'ytgui/Search-R3.0-Small'."
            )
        return  # a Hub id
    if not path.is_dir():
        raise ModelLoadError(f"{source!r} is a file; pass the model folder that contains it.")
    files = [f.name for f in path.iterdir() if f.is_file()]
    has_safetensors = any(f.endswith(".safetensors") for f in files)
    if not has_safetensors and any(f.endswith(_PICKLE_SUFFIXES) for f in files):
        raise ModelLoadError(
            f"{source!r} holds PyTorch pickle weights (*.bin/*.pt) but no *.safetensors. search-r3 never "
            "loads pickle files (they can run code). Convert it once where you trust the file: "
            "`AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)` writes safetensors."
        )


def _has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))


def _adapter_base(source: str) -> str | None:
    """Base model named by a local PEFT adapter folder, if ``source`` is one."""
    config = Path(source) / "adapter_config.json"
    if not config.is_file():
        return None
    import json

    return json.loads(config.read_text())["base_model_name_or_path"]


def _apply_adapter(model: Any, source: str, vocab_size: int, hub: dict[str, Any]) -> Any:
    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelLoadError(
            f"{source} is a LoRA adapter; loading it needs peft: pip install 'search-r3[peft]'."
        ) from exc
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        model.resize_token_embeddings(vocab_size)
    model = PeftModel.from_pretrained(model, source, **{k: v for k, v in hub.items() if v is not None})
    config = Path(source) / "config.json"
    if config.is_file():  # the adapter folder keeps the search-r3 settings of the trained model
        import json

        stored = json.loads(config.read_text()).get("search_r3")
        if stored is not None:
            model.config.search_r3 = stored
    return model.merge_and_unload()
