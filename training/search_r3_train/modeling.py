"""Loading a model for training (full or LoRA) and the two forward passes the loss needs.

Both passes go through the causal LM's own ``forward`` (so DDP, DeepSpeed and FSDP wrappers see
them) with ``output_hidden_states``; the embedding is read from the last hidden state by the core's
``pool_embed_token``, and the LM head runs only on the positions the LM and KL terms need.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search_r3.devices import resolve_dtype
from search_r3.loading import secure_embed_token
from search_r3.pooling import backbone_of, pool_embed_token, position_ids_from_mask
from search_r3.prompts import PromptBuilder
from search_r3.settings import CONFIG_KEY, SearchR3Settings
from search_r3_train.arguments import ConfigError, ModelArguments

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """What training needs besides the data: the model, its tokenizer, prompts and reference."""

    model: Any
    tokenizer: Any
    settings: SearchR3Settings
    prompts: PromptBuilder
    embed_id: int
    reference: Any = None  # frozen copy for the KL term in full fine-tuning (LoRA: adapter off)
    token_added: bool = False  # the embed token was added here (the start model was not search-r3)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0


def _trainable_token_indices(model: Any, embed_id: int) -> list[int] | dict[str, list[int]]:
    """peft ``trainable_token_indices`` covering the embed token's input and output rows."""
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if outputs is None or outputs.weight is inputs.weight:
        return [embed_id]  # tied: peft updates the shared row for both uses
    names = {module: name.rsplit(".", 1)[-1] for name, module in model.named_modules()}
    return {names[inputs]: [embed_id], names[outputs]: [embed_id]}


def freeze_below_top_layers(model: Any, count: int) -> None:
    """Train only the top ``count`` decoder layers and the final norm; freeze everything else.

    Autograd then stops at the first trainable layer, so the backward pass costs a fraction of
    a full one. The embed token's rows stay frozen too (fine for direct, no-reasoning training).
    """
    backbone = backbone_of(model)
    layers = getattr(backbone, "layers", None)
    if layers is None:
        raise ConfigError(f"train_top_layers: {type(backbone).__name__} has no .layers to choose from.")
    if not 0 < count <= len(layers):
        raise ConfigError(
            f"train_top_layers must be between 1 and {len(layers)} for this model, not {count}."
        )
    model.requires_grad_(False)
    for layer in list(layers)[-count:]:
        layer.requires_grad_(True)
    norm = getattr(backbone, "norm", None)
    if norm is not None:
        norm.requires_grad_(True)


def record_start_folder(model: Any, path: str | Path) -> None:
    """Make ``path`` the model's origin, so an adapter trained on it records ``path`` as its base.

    A merged adapter otherwise still names the folder of the adapter's own base. peft reads
    ``model.name_or_path``; transformers saves ``config._name_or_path``: both are set.
    """
    model.config._name_or_path = model.name_or_path = str(Path(path).resolve())


def load_merged_adapter(path: str, dtype: str, attn_implementation: str | None = None) -> tuple[Any, Any]:
    """A LoRA adapter folder merged onto its base (the core loader does it), and its tokenizer.

    The model records ``path`` as where it came from, so an adapter trained on top of it names
    the adapter folder as its base and loads with both merged.
    """
    from search_r3 import ReasoningEmbeddings

    loaded = ReasoningEmbeddings.from_pretrained(path, device="cpu", dtype=dtype)
    model = loaded.model
    record_start_folder(model, path)
    if attn_implementation:
        model.config._attn_implementation = attn_implementation
    return model, loaded.tokenizer


def load_for_training(args: ModelArguments, kl_reference: bool) -> LoadedModel:
    """Load ``args.model_name_or_path`` for training.

    A plain instruction-tuned LM gets the embed token on the fly (with the published prompts).
    ``kl_reference`` asks for the frozen base the KL term compares against: with LoRA that is the
    same weights with the adapter disabled, in full fine-tuning a frozen copy.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from search_r3.init_model import add_embed_token

    if not args.model_name_or_path:
        raise ConfigError("Set model_name_or_path (a search-r3 model folder made by `search-r3 init`).")
    path = args.model_name_or_path
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if (Path(path) / "adapter_config.json").is_file():
        model, tokenizer = load_merged_adapter(path, args.model_dtype, args.attn_implementation)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        extra = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=resolve_dtype(args.model_dtype, device), trust_remote_code=False, **extra
        )
    stored = getattr(model.config, CONFIG_KEY, None)
    settings = SearchR3Settings.from_dict(stored)
    token_added = settings.embed_token not in tokenizer.get_vocab()
    if token_added:
        logger.warning(
            "%s is not a search-r3 model: adding %s with the published prompts (tip: run `search-r3 init` "
            "once and train from its output).",
            path,
            settings.embed_token,
        )
        add_embed_token(model, tokenizer, settings.embed_token)
    secure_embed_token(tokenizer, settings.embed_token)  # never an embed id from user text
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    settings.write_to_model_config(model.config)
    prompts = PromptBuilder(tokenizer, settings, max_length=args.text_max_length)
    embed_id = prompts.embed_id

    reference = None
    if args.use_lora:
        from peft import LoraConfig, get_peft_model

        targets = args.lora_target_modules
        config = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules="all-linear" if targets == ["all-linear"] else list(targets),
            task_type="CAUSAL_LM",
            trainable_token_indices=_trainable_token_indices(model, embed_id)
            if args.train_embed_token
            else None,
        )
        model = get_peft_model(model, config)
    else:
        if kl_reference:
            reference = copy.deepcopy(model).eval().requires_grad_(False)
        if args.train_top_layers is not None:
            freeze_below_top_layers(model, args.train_top_layers)
    return LoadedModel(model, tokenizer, settings, prompts, embed_id, reference, token_added)


@dataclass
class QueryOutput:
    """Query embeddings and the LM logits of the assistant turn."""

    embeddings: torch.Tensor  # (B, H)
    logits: torch.Tensor  # (B, A, V): logits[:, i] predicts targets[:, i]
    targets: torch.Tensor  # (B, A): assistant tokens, IGNORE_INDEX where a row's turn is shorter


def assistant_span(labels: torch.Tensor) -> int:
    """Width of the longest assistant turn (labels are left-padded: turns end at the last column)."""
    return int((labels != -100).sum(dim=1).max().item())


def forward_queries(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    embed_id: int,
    normalize: bool,
    with_embeddings: bool = True,
) -> QueryOutput:
    """One forward of left-padded query sequences: embedding at the token, logits of the turn."""
    width = input_ids.shape[1]
    span = assistant_span(labels)
    # position t predicts token t+1: the turn's tokens [width-span, width) come from [width-span-1, width-1)
    keep = torch.arange(width - span - 1, width - 1, device=input_ids.device)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        output_hidden_states=with_embeddings,
        logits_to_keep=keep,
        use_cache=False,
    )
    embeddings = (
        pool_embed_token(out.hidden_states[-1], input_ids, embed_id, normalize) if with_embeddings else None
    )
    return QueryOutput(embeddings, out.logits, labels[:, width - span :])


def forward_documents(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, embed_id: int, normalize: bool
) -> torch.Tensor:
    """Embeddings of document sequences (the LM head is skipped: no logits are kept)."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        output_hidden_states=True,
        logits_to_keep=torch.arange(0, device=input_ids.device),
        use_cache=False,
    )
    return pool_embed_token(out.hidden_states[-1], input_ids, embed_id, normalize)
