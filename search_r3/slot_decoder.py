"""Llama-family decoding over a preallocated KV cache whose rows can join and leave a running batch.

Each live row owns one *slot* of the cache: its keys and values sit at positions ``0..length-1``
with no padding, so a row admitted while others are decoding simply takes the next free slot,
and a row that finishes gives its slot back (the last rows move down). One decoding step feeds one
token per row and writes its keys and values in place: nothing is concatenated or reallocated
while the cache has room.

The forward pass is a lean one written for the Llama layout (Llama, SmolLM2, Qwen2): it calls the
model's own embedding, norms, rotary embedding and activation, and runs the projections itself.
On a CPU the projections run on copies of their weights prepacked by oneDNN (q/k/v stacked into
one product, gate/up into another): at batch 1 decoding reads every weight once per token, and
the packed layout streams them faster than the plain one, several times faster for a few rows.
The packed copies cost as much memory as the weights they copy; they are rebuilt when a weight
changes.

One query at a time (one live row, one token) takes a leaner step still (``_step_one``): at batch
1 each small operation's dispatch costs about what its arithmetic does, so the norms run as one
``F.rms_norm``, the rotary embedding of q and k as three operations, attention without a mask
over the row's own keys, and the residual additions inside the projections. It is used only
where the model's norm and rotary embedding are checked to compute the same formulas. Greedy
picks from a float32 head read a bfloat16 copy and settle close calls in float32
(``search_r3.head_argmax``): the same tokens, about half the head's bytes (the head is a fifth
of SmolLM2-135M's weights).
Models of another layout use the transformers forward instead (see ``search_r3.decoding``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_r3.head_argmax import CertifiedArgmax
from search_r3.pooling import backbone_of

#: ``config.model_type`` values whose decoder layers have the Llama layout this module runs.
SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2"})

#: The cache grows in steps of this many positions.
LENGTH_STEP = 128


def supports(causal_lm: Any) -> bool:
    """Whether ``causal_lm`` can decode on ``SlotDecoder`` (a plain Llama-layout model)."""
    try:
        backbone = backbone_of(causal_lm)
        config = backbone.config
    except AttributeError:
        return False
    if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or []):
        return False
    if getattr(config, "use_sliding_window", False):
        return False
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if not all(hasattr(backbone, name) for name in needed):
        return False
    head = causal_lm.get_output_embeddings()
    linears = [head]
    for layer in backbone.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None or not hasattr(mlp, "act_fn"):
            return False
        names = ("q_proj", "k_proj", "v_proj", "o_proj")
        linears += [getattr(attn, n, None) for n in names]
        linears += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    # exactly nn.Linear: a LoRA or quantized layer computes something else
    return all(type(module) is nn.Linear for module in linears)


class _Linears:
    """Projections of one input, stacked into one product over a packed copy of their weights
    (oneDNN's blocked layout), or ``F.linear`` on the model's weights where packing is off."""

    def __init__(self, modules: Sequence[nn.Linear], pack: bool):
        self.weights = [m.weight for m in modules]
        self.biases = [m.bias for m in modules]
        self.sizes = [int(w.shape[0]) for w in self.weights]
        self.packed: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.packed_add: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        if pack and self.weights[0].device.type == "cpu":
            weight = torch.cat([w.detach() for w in self.weights])
            bias = None
            if any(b is not None for b in self.biases):
                pairs = zip(self.weights, self.biases, strict=True)
                bias = torch.cat([w.new_zeros(w.shape[0]) if b is None else b.detach() for w, b in pairs])
            self.packed, self.packed_add = _packed(weight, bias)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.packed is not None:
            return list(self.packed(x).split(self.sizes, dim=-1))
        return [F.linear(x, w, b) for w, b in zip(self.weights, self.biases, strict=True)]

    def joint(self, x: torch.Tensor) -> torch.Tensor:
        """All the projections side by side in one ``(rows, sum of sizes)`` tensor."""
        if self.packed is not None:
            return self.packed(x)
        if len(self.weights) == 1:
            return F.linear(x, self.weights[0], self.biases[0])
        return torch.cat(self(x), dim=-1)

    def add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual`` plus the (single) projection of ``x``, the sum fused into the product."""
        if self.packed_add is not None:
            return self.packed_add(x, residual)
        return residual + F.linear(x, self.weights[0], self.biases[0])


#: Row count oneDNN lays the packed weights out for. On the development machine (AVX-512) this
#: layout ran one row as fast as a layout for one row, and 8-32 rows clearly faster.
PACK_ROWS = 8


def _packed(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[Any, Any]:
    """A product with a prepacked copy of ``weight`` (oneDNN), and the same product plus a
    residual (the addition fused as a oneDNN post-op); None for either where unavailable."""
    if weight.dtype not in (torch.float32, torch.bfloat16) or not torch.backends.mkldnn.is_available():
        return None, None
    linear = torch.ops.mkldnn._linear_pointwise
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_ROWS)
        probe = linear(weight.new_zeros(1, weight.shape[1]), packed, bias, "none", [], "")
    except (RuntimeError, AttributeError):  # an operator missing from this torch build
        return None, None
    if probe.shape != (1, weight.shape[0]):
        return None, None

    def product(x: torch.Tensor) -> torch.Tensor:
        return linear(x, packed, bias, "none", [], "")

    try:
        zeros = weight.new_zeros(1, weight.shape[1])
        summed = linear.binary(zeros, torch.ones_like(probe), packed, bias, "add")
        fused = bool(summed.shape == probe.shape and torch.equal(summed, probe + 1))
    except (RuntimeError, AttributeError):
        fused = False

    def product_add(x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return linear.binary(x, residual, packed, bias, "add")

    return product, (product_add if fused else None)


class _Layer:
    def __init__(self, layer: nn.Module, pack: bool):
        attn, mlp = layer.self_attn, layer.mlp
        self.input_norm, self.post_norm = layer.input_layernorm, layer.post_attention_layernorm
        self.qkv = _Linears([attn.q_proj, attn.k_proj, attn.v_proj], pack)
        self.o = _Linears([attn.o_proj], pack)
        self.gate_up = _Linears([mlp.gate_proj, mlp.up_proj], pack)
        self.down = _Linears([mlp.down_proj], pack)
        self.act = mlp.act_fn
        self.input_rms, self.post_rms = _rms(self.input_norm), _rms(self.post_norm)


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    """How far two roundings of the same formula may differ in ``dtype``: a few units of its
    precision (a different formula, such as Gemma's ``1 + weight`` norm or an interleaved rotary
    embedding, differs by far more)."""
    unit = max(float(torch.finfo(dtype).eps), 2.0**-20) * 4
    return {"rtol": unit, "atol": unit}


def _rms(norm: nn.Module) -> tuple[torch.Tensor, float] | None:
    """``(weight, eps)`` of a norm that ``F.rms_norm`` computes (Llama's RMSNorm), else None."""
    weight, eps = getattr(norm, "weight", None), getattr(norm, "variance_epsilon", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or not isinstance(eps, float):
        return None
    probe = torch.randn(2, weight.shape[0], generator=torch.Generator().manual_seed(0)).to(weight)
    with torch.inference_mode():
        got, want = F.rms_norm(probe, weight.shape, weight, eps), norm(probe)
    same = torch.allclose(got.float(), want.float(), **_tolerance(weight.dtype))
    return (weight, eps) if same else None


class _Weights:
    """The model's modules and packed projection copies, rebuilt when a weight changes."""

    def __init__(self, causal_lm: Any, pack: bool):
        backbone = backbone_of(causal_lm)
        self.embed, self.norm, self.rotary = backbone.embed_tokens, backbone.norm, backbone.rotary_emb
        self.layers = [_Layer(layer, pack) for layer in backbone.layers]
        self.head = _Linears([causal_lm.get_output_embeddings()], pack)
        attn = backbone.layers[0].self_attn
        self.apply_rotary = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        config = backbone.config
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(attn.head_dim)
        self.scaling = float(attn.scaling)
        self.hidden = int(config.hidden_size)
        self.dtype, self.device = self.head.weights[0].dtype, self.head.weights[0].device
        self.version = _version(causal_lm)
        #: the last prompt head computed: its ids, and its keys and values per layer
        self.prefix: tuple[list[int], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
        self.final_rms = _rms(self.norm)
        #: whether one row's decoding step can take the lean path (``SlotDecoder._step_one``)
        self.lean = (
            self.final_rms is not None
            and all(layer.input_rms is not None and layer.post_rms is not None for layer in self.layers)
            and self.heads % self.kv_heads == 0
            and self._rotary_is_half_rotation()
        )
        self.greedy = CertifiedArgmax.build(self.head.weights[0], self.head.biases[0]) if pack else None

    def _rotary_is_half_rotation(self) -> bool:
        """Whether the model's rotary embedding is the rotate-half form ``_rotate`` computes."""
        generator = torch.Generator().manual_seed(0)
        q = torch.randn(1, self.heads, 1, self.head_dim, generator=generator).to(self.dtype)
        k = torch.randn(1, self.kv_heads, 1, self.head_dim, generator=generator).to(self.dtype)
        with torch.inference_mode():
            cos, sin = self.rotary(q, torch.tensor([[5]]))
            want_q, want_k = self.apply_rotary(q, k, cos, sin)
            joint = torch.cat([q[0, :, 0], k[0, :, 0]]).to(self.device)
            got = _rotate(joint, cos[0, 0].to(self.device), _signed_sin(sin[0, 0]).to(self.device))
        want = torch.cat([want_q[0, :, 0], want_k[0, :, 0]]).to(self.device)
        return bool(torch.allclose(got.float(), want.float(), **_tolerance(self.dtype)))


def _signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """``sin`` with its first half negated: ``rotate_half(x) * sin == swap_halves(x) * signed``."""
    half = sin.shape[-1] // 2
    return torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x`` ``(heads, head_dim)``: ``x * cos + rotate_half(x) * sin``, the same
    products and sum as the model's ``apply_rotary_pos_emb``, in three operations."""
    heads, dim = x.shape
    swapped = x.view(heads, 2, dim // 2).flip(1).view(heads, dim)
    return torch.addcmul(x * cos, swapped, signed_sin)


def _rotate_rows(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """``_rotate`` for several tokens: ``x`` ``(tokens, heads, head_dim)``, ``cos`` and
    ``signed_sin`` ``(tokens, 1, head_dim)``."""
    tokens, heads, dim = x.shape
    swapped = x.view(tokens, heads, 2, dim // 2).flip(2).view(tokens, heads, dim)
    return torch.addcmul(x * cos, swapped, signed_sin)


def _version(causal_lm: Any) -> tuple[tuple[int, int], ...]:
    return tuple((p.data_ptr(), p._version) for p in causal_lm.parameters())


_WEIGHTS_ATTRIBUTE = "_search_r3_slot_weights"


def _weights(causal_lm: Any, pack: bool) -> _Weights:
    """The model's (cached) decoding weights; packing is done once per model and weight version."""
    cached = getattr(causal_lm, _WEIGHTS_ATTRIBUTE, None)
    if cached is not None and cached[0] == pack and cached[1].version == _version(causal_lm):
        return cached[1]
    weights = _Weights(causal_lm, pack)
    object.__setattr__(causal_lm, _WEIGHTS_ATTRIBUTE, (pack, weights))  # not a submodule
    return weights


class SlotDecoder:
    """Live rows in KV slots ``0..n-1``; admit rows, feed tokens, drop finished rows.

    Args:
        causal_lm: A model for which ``supports`` is true.
        pack: Run the projections on packed weight copies (on a CPU).

    Example:
        ```python
        decoder = SlotDecoder(model)
        hidden = decoder.admit([prompt_ids])  # (1, hidden) state after each prompt's last token
        hidden = decoder.step([next_token])  # (n_live, hidden)
        decoder.keep([])  # every row finished
        ```
    """

    joins_running = True

    def __init__(self, causal_lm: Any, *, pack: bool = True):
        self.w = _weights(causal_lm, pack)
        self._clear()

    def _clear(self) -> None:
        self.lengths: list[int] = []  # tokens stored per live row
        self.keys: list[torch.Tensor] = []  # per layer: (slots, kv_heads, capacity, head_dim)
        self.values: list[torch.Tensor] = []
        self.prefix: list[int] = []  # token ids whose keys/values are kept in prefix_keys/values
        self.prefix_keys: list[torch.Tensor] = []
        self.prefix_values: list[torch.Tensor] = []

    @property
    def size(self) -> int:
        return len(self.lengths)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits for final hidden states ``(rows, hidden)``."""
        return self.w.head(hidden)[0]

    def greedy(self, hidden: torch.Tensor, banned: Sequence[Sequence[int]]) -> list[int]:
        """The most likely next token of each row of ``hidden``, ``banned[i]`` excluded for row i.

        A float32 head is read as a bfloat16 copy and the result checked in float32 (see
        ``search_r3.head_argmax``): the same tokens as the argmax of ``logits``, half the bytes.
        """
        if self.w.greedy is not None:
            return self.w.greedy.pick(hidden, banned)
        logits = self.logits(hidden)
        for i, ids in enumerate(banned):
            if ids:
                logits[i, list(ids)] = float("-inf")
        return logits.argmax(dim=-1).tolist()

    # -- cache storage ------------------------------------------------------------------------
    def _reserve(self, rows: int, length: int) -> None:
        slots = self.keys[0].shape[0] if self.keys else 0
        capacity = self.keys[0].shape[2] if self.keys else 0
        if rows <= slots and length <= capacity:
            return
        slots = max(rows, 2 * slots) if rows > slots else slots  # rows arriving one by one
        capacity = max(capacity, -(-length // LENGTH_STEP) * LENGTH_STEP)
        shape = (slots, self.w.kv_heads, capacity, self.w.head_dim)
        live, used = self.size, max(self.lengths, default=0)
        for store in (self.keys, self.values):
            for i in range(len(self.w.layers)):
                # zeros, not empty: masked positions still meet the values (0 * NaN would be NaN)
                new = torch.zeros(shape, dtype=self.w.dtype, device=self.w.device)
                if i < len(store):
                    new[:live, :, :used] = store[i][:live, :, :used]
                    store[i] = new
                else:
                    store.append(new)

    def set_prefix(self, ids: Sequence[int]) -> None:
        """Compute and keep the keys and values of ``ids``, a head many prompts start with.

        The last head computed is kept with the model's weights, so later decoders reuse it.
        """
        ids = [int(i) for i in ids]
        if not ids or ids == self.prefix:
            return
        if self.w.prefix[0] != ids:
            scratch = SlotDecoder.__new__(SlotDecoder)  # same weights, storage of its own
            scratch.w = self.w
            scratch._clear()
            scratch._reserve(1, len(ids))
            scratch._forward(torch.tensor([ids], device=self.w.device), [0], 0)
            keys = [k[0, :, : len(ids)].clone() for k in scratch.keys]
            values = [v[0, :, : len(ids)].clone() for v in scratch.values]
            self.w.prefix = (ids, keys, values)
        self.prefix, self.prefix_keys, self.prefix_values = self.w.prefix

    # -- rows -------------------------------------------------------------------------------
    def join(self, prompts: Sequence[Sequence[int]]) -> list[list[int]]:
        """Add rows for ``prompts`` after the live ones without running them; returns the tokens
        each row still has to be fed (its prompt after the shared head, whose keys and values
        are copied in).

        For chunked prefill: the caller feeds these tokens with ``verify_rows``, in the same
        forward as the other rows' next tokens and in chunks if it likes, and the rows decode
        from there.
        """
        p = len(self.prefix)
        uses_prefix = [p > 0 and len(x) > p and list(x[:p]) == self.prefix for x in prompts]
        starts = [p if use else 0 for use in uses_prefix]
        first = self.size
        self._reserve(first + len(prompts), max(len(x) for x in prompts))
        for j, use in enumerate(uses_prefix):
            if use:
                for store, prefix in ((self.keys, self.prefix_keys), (self.values, self.prefix_values)):
                    for layer, values in zip(store, prefix, strict=True):
                        layer[first + j, :, :p] = values
        self.lengths += starts
        return [[int(t) for t in x[s:]] for x, s in zip(prompts, starts, strict=True)]

    def admit(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Add rows for ``prompts`` after the live ones; returns each one's last hidden state."""
        first = self.size
        own = self.join(prompts)
        width = max(len(x) for x in own)
        ids = torch.zeros(len(own), width, dtype=torch.long)
        for j, x in enumerate(own):
            ids[j, : len(x)] = torch.tensor(x, dtype=torch.long)
        counts = [len(x) for x in own]
        hidden = self._forward(ids.to(self.w.device), self.lengths[first:], first, counts)
        self.lengths[first:] = [n + c for n, c in zip(self.lengths[first:], counts, strict=True)]
        rows = torch.arange(len(own), device=hidden.device)
        return hidden[rows, torch.tensor([c - 1 for c in counts], device=hidden.device)]

    def step(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed one token per live row; returns ``(n, hidden)``."""
        ids = torch.tensor(list(tokens), dtype=torch.long, device=self.w.device).unsqueeze(1)
        self._reserve(self.size, max(self.lengths) + 1)
        if self.size == 1 and self.w.lean:
            hidden = self._step_one(ids, self.lengths[0])
        else:
            hidden = self._forward(ids, list(self.lengths), 0)[:, 0]
        self.lengths = [n + 1 for n in self.lengths]
        return hidden

    def step_many(self, scripts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Feed each live row its own list of tokens (right-padded); returns each row's last state."""
        width = max(len(s) for s in scripts)
        if width == 1 and len(scripts) == 1 == self.size and self.w.lean:
            return self.step(scripts[0])  # one token for one row: the one-row step
        ids = torch.zeros(len(scripts), width, dtype=torch.long)
        for j, script in enumerate(scripts):
            ids[j, : len(script)] = torch.tensor(list(script), dtype=torch.long)
        self._reserve(self.size, max(self.lengths) + width)
        hidden = self._forward(ids.to(self.w.device), list(self.lengths), 0)
        self.lengths = [n + len(s) for n, s in zip(self.lengths, scripts, strict=True)]
        rows = torch.arange(len(scripts), device=hidden.device)
        return hidden[rows, torch.tensor([len(s) - 1 for s in scripts], device=hidden.device)]

    def verify(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed the one live row several tokens; returns the state after each, ``(len, hidden)``.

        For checking drafted tokens (``search_r3.speculation``): one forward reads the weights
        once for all of them. Follow it with ``truncate`` to drop the positions not kept.
        """
        if self.size != 1:
            raise RuntimeError("verify feeds the one live row; decode several rows with step.")
        tokens = [int(t) for t in tokens]
        position = self.lengths[0]
        self._reserve(1, position + len(tokens))
        ids = torch.tensor([tokens], dtype=torch.long, device=self.w.device)
        hidden = self._forward(ids, [position], 0)[0]
        self.lengths = [position + len(tokens)]
        return hidden

    def verify_rows(self, scripts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Feed each live row its own tokens (one or more); returns the state after each,
        ``(rows, longest, hidden)``, right-padded (the states past a row's own tokens are not
        meaningful).

        Several rows' drafted tokens checked in one forward (``search_r3.speculation``): the
        projections run on the fed tokens only, so a forward costs what its tokens cost, not
        rows times the longest script. Follow it with ``truncate`` to drop what is not kept.
        """
        scripts = [[int(t) for t in s] for s in scripts]
        if len(scripts) != self.size or any(not s for s in scripts):
            raise ValueError("verify_rows takes one non-empty list of tokens per live row.")
        if self.size == 1:
            return self.verify(scripts[0]).unsqueeze(0)
        width = max(len(s) for s in scripts)
        ids = torch.zeros(len(scripts), width, dtype=torch.long)
        for j, script in enumerate(scripts):
            ids[j, : len(script)] = torch.tensor(script, dtype=torch.long)
        self._reserve(self.size, max(self.lengths) + width)
        counts = [len(s) for s in scripts]
        hidden = self._forward(ids.to(self.w.device), list(self.lengths), 0, counts)
        self.lengths = [n + c for n, c in zip(self.lengths, counts, strict=True)]
        return hidden

    def truncate(self, lengths: Sequence[int]) -> None:
        """Cut live rows back to ``lengths`` stored tokens (no longer than now).

        The cache is indexed by position and every read stops at the row's own length, so the
        keys and values past it are never read again; the next tokens overwrite them.
        """
        lengths = [int(n) for n in lengths]
        pairs = zip(lengths, self.lengths, strict=False)
        if len(lengths) != self.size or any(not 0 < n <= m for n, m in pairs):
            raise ValueError(f"cannot truncate rows of lengths {self.lengths} to {lengths}.")
        self.lengths = lengths

    def keep(self, keep: Sequence[int]) -> None:
        """Keep only the live rows at positions ``keep`` (in that order) in slots ``0..len-1``.

        Only the rows whose slot changes are copied: an order that leaves the survivors in place
        and moves the last rows into the holes (``fill_order``) copies one row per leaver.
        """
        keep = list(keep)
        moves = [(slot, row) for slot, row in enumerate(keep) if slot != row]
        if moves:
            used = max(self.lengths[row] for _, row in moves)
            to = torch.tensor([slot for slot, _ in moves], dtype=torch.long, device=self.w.device)
            source = torch.tensor([row for _, row in moves], dtype=torch.long, device=self.w.device)
            for store in (self.keys, self.values):
                for layer in store:
                    layer[to, :, :used] = layer[source, :, :used]  # the source is read first
        self.lengths = [self.lengths[j] for j in keep]

    # -- the forward pass -------------------------------------------------------------------
    def _step_one(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        """One token for the one live row (slot 0) at ``position``: the batch-1 decoding step.

        The same computation as ``_forward`` in fewer, fused operations, since at batch 1 each
        operation's dispatch costs about what its arithmetic does: the norms as one
        ``F.rms_norm``; the rotary embedding of q and k together in three operations; attention
        with the query heads that share a key head as the query rows of that head (no mask, no
        repeated keys); the residual additions fused into the projections.
        Returns the final-norm hidden state ``(1, hidden)``.
        """
        w = self.w
        x = w.embed(ids)[0]  # (1, hidden)
        cos, sin = w.rotary(x, torch.tensor([[position]], device=ids.device))
        cos, sin = cos[0, 0], _signed_sin(sin[0, 0])
        group, rotated = w.heads // w.kv_heads, (w.heads + w.kv_heads) * w.head_dim
        shape = (1, w.kv_heads, group, w.head_dim)
        span = position + 1
        for layer, k_store, v_store in zip(w.layers, self.keys, self.values, strict=True):
            h = F.rms_norm(x, (w.hidden,), *layer.input_rms)
            qkv = layer.qkv.joint(h)[0]
            qk = _rotate(qkv[:rotated].view(w.heads + w.kv_heads, w.head_dim), cos, sin)
            k_store[0, :, position] = qk[w.heads :]
            v_store[0, :, position] = qkv[rotated:].view(w.kv_heads, w.head_dim)
            q = qk[: w.heads].view(shape)  # query heads grouped under the key head they share
            keys, values = k_store[:1, :, :span], v_store[:1, :, :span]
            attn = F.scaled_dot_product_attention(q, keys, values, scale=w.scaling)
            x = layer.o.add(attn.view(1, w.heads * w.head_dim), x)
            h = F.rms_norm(x, (w.hidden,), *layer.post_rms)
            gate, up = layer.gate_up.joint(h).split(layer.gate_up.sizes, dim=-1)
            x = layer.down.add(layer.act(gate).mul_(up), x)
        return F.rms_norm(x, (w.hidden,), *w.final_rms)

    def _forward(
        self, ids: torch.Tensor, starts: list[int], first: int, counts: list[int] | None = None
    ) -> torch.Tensor:
        """Run ``ids`` (rows, width) for the rows in slots ``first..``, written from ``starts``.

        Row ``j``'s tokens take positions ``starts[j]..``; each attends to its own slot's keys
        up to its own position. With ``counts``, only the first ``counts[j]`` tokens of row ``j``
        are real. The norms and projections run on the real tokens alone, as one flat batch;
        attention runs per run of neighbouring rows of a similar token count (``_attention_groups``),
        so a prompt chunk fed beside one-token rows does not pad them all to its width.
        Returns the final-norm hidden states ``(rows, width, hidden)`` (zeros past a row's count).
        """
        w = self.w
        rows, width = ids.shape
        device = ids.device
        counts = [width] * rows if counts is None else [int(c) for c in counts]
        offsets = [0]
        for c in counts:
            offsets.append(offsets[-1] + c)
        flat = _real_positions(counts, width, device)  # None when no row is padded
        positions = torch.tensor(
            [starts[j] + i for j in range(rows) for i in range(counts[j])], dtype=torch.long, device=device
        )
        slots = torch.tensor([first + j for j in range(rows) for _ in range(counts[j])], device=device)
        x = w.embed(ids.view(-1) if flat is None else ids.view(-1)[flat])  # (tokens, hidden)
        tokens = x.shape[0]
        cos, sin = w.rotary(x, positions.unsqueeze(0))
        if w.lean:  # the fused operations of ``_step_one``, for every fed token at once
            cos, sin = cos[0].unsqueeze(1), _signed_sin(sin[0]).unsqueeze(1)  # (tokens, 1, head_dim)
        groups = [
            _AttentionGroup(w, a, b, starts, counts, offsets, first, device)
            for a, b in _attention_groups(counts)
        ]
        rotated = (w.heads + w.kv_heads) * w.head_dim
        attn = x.new_empty(tokens, w.heads * w.head_dim)
        for layer, k_store, v_store in zip(w.layers, self.keys, self.values, strict=True):
            if w.lean:
                h = F.rms_norm(x, (w.hidden,), *layer.input_rms)
                qkv = layer.qkv.joint(h)
                qk = _rotate_rows(qkv[:, :rotated].view(tokens, w.heads + w.kv_heads, w.head_dim), cos, sin)
                q, k = qk[:, : w.heads], qk[:, w.heads :]
                v = qkv[:, rotated:].view(tokens, w.kv_heads, w.head_dim)
            else:
                q, k, v = layer.qkv(layer.input_norm(x))
                q = q.view(1, tokens, w.heads, w.head_dim).transpose(1, 2)
                k = k.view(1, tokens, w.kv_heads, w.head_dim).transpose(1, 2)
                q, k = w.apply_rotary(q, k, cos, sin)
                q, k = q[0].transpose(0, 1), k[0].transpose(0, 1)  # (tokens, heads, head_dim)
                v = v.view(tokens, w.kv_heads, w.head_dim)
            if rows == 1:  # one row's tokens are consecutive positions: a slice, no index
                k_store[first, :, starts[0] : starts[0] + tokens] = k.transpose(0, 1)
                v_store[first, :, starts[0] : starts[0] + tokens] = v.transpose(0, 1)
            else:  # every row's tokens in one write
                k_store[slots, :, positions] = k
                v_store[slots, :, positions] = v
            for group in groups:
                group.attend(q, k_store, v_store, attn)
            if w.lean:
                x = layer.o.add(attn, x)
                h = F.rms_norm(x, (w.hidden,), *layer.post_rms)
                gate, up = layer.gate_up.joint(h).split(layer.gate_up.sizes, dim=-1)
                x = layer.down.add(layer.act(gate).mul_(up), x)
            else:
                x = x + layer.o(attn)[0]
                gate, up = layer.gate_up(layer.post_norm(x))
                x = x + layer.down(layer.act(gate) * up)[0]
        x = F.rms_norm(x, (w.hidden,), *w.final_rms) if w.lean else w.norm(x)
        if flat is not None:
            full = x.new_zeros(rows * width, w.hidden)
            full[flat] = x
            x = full
        return x.view(rows, width, w.hidden)


#: Rows fed at most this many tokens share one attention call (decoding steps, drafted tokens);
#: longer ones (prompt chunks) attend in runs of a similar count, so padding stays under 2x.
SHORT_ROW = 8


def _real_positions(counts: Sequence[int], width: int, device: torch.device) -> torch.Tensor | None:
    """Where the real tokens sit when rows fed ``counts`` tokens are padded to ``width`` (flat
    indices into ``rows * width``, row by row), or None when no row is padded."""
    if all(c == width for c in counts):
        return None
    return torch.tensor([j * width + i for j, c in enumerate(counts) for i in range(c)], device=device)


def _attention_groups(counts: Sequence[int]) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of neighbouring rows that attend in one call: rows of at most ``SHORT_ROW``
    tokens together, longer rows with those of the same power-of-two size class."""
    keys = [0 if c <= SHORT_ROW else int(c).bit_length() for c in counts]
    runs, a = [], 0
    for j in range(1, len(keys) + 1):
        if j == len(keys) or keys[j] != keys[a]:
            runs.append((a, j))
            a = j
    return runs


class _AttentionGroup:
    """Attention of rows ``a..b-1`` of a forward, padded to their longest count.

    The query heads that share a key head are stacked as that head's query rows, so the keys
    and values are read in place from the slots (no repeated heads, no copy).
    """

    def __init__(
        self,
        w: _Weights,
        a: int,
        b: int,
        starts: Sequence[int],
        counts: Sequence[int],
        offsets: Sequence[int],
        first: int,
        device: torch.device,
    ):
        self.w = w
        self.slots = slice(first + a, first + b)
        self.rows, self.width = b - a, max(counts[a:b])
        self.tokens = slice(offsets[a], offsets[b])
        self.span = max(starts[j] + counts[j] for j in range(a, b))
        group = w.heads // w.kv_heads
        self.real = _real_positions(counts[a:b], self.width, device)  # None: no row padded
        if self.rows == 1 and self.width == 1:
            self.mask = None  # one query at the end of its row: every stored key is visible
        else:
            start = torch.tensor(list(starts[a:b]), device=device)
            at = start.unsqueeze(1) + torch.arange(self.width, device=device)  # (rows, width)
            visible = torch.arange(self.span, device=device).view(1, 1, -1) <= at.unsqueeze(2)
            self.mask = visible.repeat(1, group, 1).unsqueeze(1)  # (rows, 1, group * width, span)

    def attend(
        self, q: torch.Tensor, k_store: torch.Tensor, v_store: torch.Tensor, out: torch.Tensor
    ) -> None:
        """Write the attention of the group's tokens (``q`` is ``(tokens, heads, head_dim)`` for
        the whole forward) into ``out`` ``(tokens, heads * head_dim)``."""
        w, rows, width = self.w, self.rows, self.width
        group = w.heads // w.kv_heads
        mine = q[self.tokens]
        if self.real is not None:
            padded = mine.new_zeros(rows * width, w.heads, w.head_dim)
            padded[self.real] = mine
            mine = padded
        # (rows, width, kv_heads, group, head_dim) -> (rows, kv_heads, group * width, head_dim)
        mine = mine.view(rows, width, w.kv_heads, group, w.head_dim).permute(0, 2, 3, 1, 4)
        mine = mine.reshape(rows, w.kv_heads, group * width, w.head_dim)
        result = F.scaled_dot_product_attention(
            mine,
            k_store[self.slots, :, : self.span],
            v_store[self.slots, :, : self.span],
            attn_mask=self.mask,
            scale=w.scaling,
        )
        result = result.view(rows, w.kv_heads, group, width, w.head_dim).permute(0, 3, 1, 2, 4)
        result = result.reshape(rows * width, w.heads * w.head_dim)
        out[self.tokens] = result if self.real is None else result[self.real]
