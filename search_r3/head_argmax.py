"""The greedy next token of a float32 LM head, read from a bfloat16 copy and checked in float32.

At batch 1 a decoding step reads every weight once, and the LM head of a small model is a large
share of them (SmolLM2-135M: 113 MB of 538 MB in float32). ``CertifiedArgmax`` reads a bfloat16
copy of the head instead (half the bytes), bounds how far each bfloat16 logit can be from the
float32 one, and recomputes in float32 only the tokens that could still be the largest: usually
one to a few rows of the head. The token it returns is the float32 argmax (up to the float32
rounding any two float32 products differ by), so greedy decoding writes the same text.

The bound, for a head row ``w`` and a hidden state ``x``: rounding both to bfloat16 (unit
roundoff ``u = 2**-8``) moves each product by at most ``(2u + u**2) |w_i x_i|``; summing them in
float32 adds at most ``n 2**-24`` of ``sum |w_i x_i|`` (twice: the float32 recomputation rounds
too); the bfloat16 result rounds once more, by ``u`` of its value. ``sum |w_i x_i|`` is at most
``||w|| ||x||`` (Cauchy-Schwarz), so the error of a logit ``a`` is at most
``c ||w|| ||x|| + 1.01 u |a|`` with ``c = 2u + u**2 + 2.1 n 2**-24``. A token is a candidate when
its logit plus its bound reaches the largest logit minus its bound.

Bounding every logit costs several passes over a rows x vocabulary tensor, so each row is first
settled among its ``TOP_K`` largest approximate logits: every other token's logit plus bound is
at most the K-th's plus the largest row norm's term, and where that cannot reach the best lower
bound, the candidates are among those K (``CertifiedArgmax._pick_among_top``). Rows where it
can (near-ties across more than K tokens) are bounded over the whole vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: unit roundoff of bfloat16 (8 significant bits)
BF16_UNIT = 2.0**-8
#: unit roundoff of float32
F32_UNIT = 2.0**-24
#: With more candidates than this, the full float32 logits are cheaper than the gather.
MAX_CANDIDATES = 2048
#: Largest approximate logits per row searched first (``CertifiedArgmax._pick_among_top``): on
#: SmolLM2-135M the other tokens were out of reach for 111 of 112 decoding states at 16 and all
#: at 32, and selecting them costs a third of bounding every token.
TOP_K = 32


class CertifiedArgmax:
    """Greedy picks from a bfloat16 copy of a float32 head, verified in float32.

    Build it with ``CertifiedArgmax.build(weight)``, which returns None where the copy cannot
    pay (not float32, not on a CPU with oneDNN bfloat16 products).

    Example:
        ```python
        greedy = CertifiedArgmax.build(model.get_output_embeddings().weight)
        tokens = greedy.pick(hidden, banned=[[], [42]])  # one token id per row of hidden
        ```
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, packed: Any):
        self.weight = weight  # the float32 head (vocab, hidden), shared with the model
        self.bias = bias
        self.product = packed  # bfloat16 (rows, hidden) -> bfloat16 (rows, vocab)
        n = weight.shape[1]
        self.norm_scale = 2 * BF16_UNIT + BF16_UNIT**2 + 2.1 * n * F32_UNIT
        # row norms rounded up a little, so the bound holds despite their own rounding
        self.row_norms = (weight.double().norm(dim=1) * (1 + 1e-6)).float()
        self.max_row_norm = float(self.row_norms.max())

    @classmethod
    def build(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> CertifiedArgmax | None:
        """A checker for a head ``weight`` (vocab, hidden) and ``bias``, or None where a bfloat16
        copy cannot pay."""
        if weight.dtype != torch.float32 or weight.device.type != "cpu" or weight.dim() != 2:
            return None
        try:
            if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
                return None
            linear = torch.ops.mkldnn._linear_pointwise
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().bfloat16(), 8)
            zeros = weight.new_zeros(1, weight.shape[1], dtype=torch.bfloat16)
            probe = linear(zeros, packed, None, "none", [], "")
        except (RuntimeError, AttributeError):  # an operator missing from this torch build
            return None
        if probe.shape != (1, weight.shape[0]):
            return None
        bias = None if bias is None else bias.detach().float()
        return cls(weight.detach(), bias, lambda x: linear(x, packed, None, "none", [], ""))

    def pick(self, hidden: torch.Tensor, banned: Sequence[Sequence[int]] = ()) -> list[int]:
        """The float32-greedy token of each row of ``hidden`` (rows, hidden), ``banned[i]`` excluded."""
        hidden = hidden.detach().float()
        approx = self.product(hidden.bfloat16())  # (rows, vocab) bfloat16, the products only
        for i, ids in enumerate(banned):
            if ids:
                approx[i, list(ids)] = float("-inf")
        scale = hidden.norm(dim=-1, keepdim=True) * self.norm_scale  # (rows, 1)
        picks: list[int | None] = [None] * hidden.shape[0]
        if self.bias is None:
            picks = self._pick_among_top(approx, hidden, scale)
        rest = [i for i, pick in enumerate(picks) if pick is None]
        if rest:
            index = torch.tensor(rest)
            rest_banned = [banned[i] if i < len(banned) else () for i in rest]
            settled = self._pick_all(approx[index], hidden[index], scale[index], rest_banned)
            for i, pick in zip(rest, settled, strict=True):
                picks[i] = pick
        return [int(pick) for pick in picks if pick is not None]

    def _pick_among_top(
        self, approx: torch.Tensor, hidden: torch.Tensor, scale: torch.Tensor
    ) -> list[int | None]:
        """Picks found among each row's ``TOP_K`` largest approximate logits, or None for a row
        where a token outside them could still be the largest (then ``_pick_all`` decides).

        A token outside the top ``K`` has an approximate logit ``a <= v_K`` (the K-th largest),
        and ``a + 1.01 u |a|`` grows with ``a``, so its logit plus its bound is at most
        ``v_K + 1.01 u |v_K| + max ||w|| * scale``. When that stays below the largest logit minus
        bound found among the top ``K``, no such token is a candidate, and the candidates among
        the top ``K`` are those ``_pick_all`` would find: one pass over the vocabulary (the
        selection), not a bound per token.
        """
        k = min(TOP_K, approx.shape[1])
        values, ids = approx.topk(k, dim=-1)
        values = values.float()
        bounds = self._bounds(values, self.row_norms[ids], scale)
        low = (values - bounds).amax(dim=-1, keepdim=True)
        last = values[:, -1:]
        outside = last + last.abs() * (1.01 * BF16_UNIT) + self.max_row_norm * scale
        slack = (outside.abs() + low.abs()) * 1e-5  # the rounding of these few sums, with room
        sure = torch.isfinite(values).all(dim=-1, keepdim=True) & (outside + slack < low)
        candidates = (values + bounds) >= low
        picks: list[int | None] = []
        for i, ok in enumerate(sure[:, 0].tolist()):
            if not ok:
                picks.append(None)
                continue
            picks.append(self._settle(ids[i][candidates[i]], hidden[i]))
        return picks

    def _pick_all(
        self, approx: torch.Tensor, hidden: torch.Tensor, scale: torch.Tensor, banned: Sequence[Sequence[int]]
    ) -> list[int]:
        """Picks with a bound for every token of the vocabulary (``approx``: bfloat16 products,
        banned tokens already at -inf)."""
        approx = approx.float()
        bound = self._bounds(approx, self.row_norms, scale)
        if self.bias is not None:  # adding it in float32 rounds by a float32 unit at most
            approx = approx + self.bias
            bound = torch.addcmul(bound, approx.abs() + self.bias.abs(), approx.new_tensor(4 * F32_UNIT))
        bound = torch.nan_to_num(bound, nan=float("inf"), posinf=float("inf"))  # -inf logits: no bound
        low = (approx - bound).amax(dim=-1, keepdim=True)
        candidates = (approx + bound) >= low
        picks = []
        for i in range(hidden.shape[0]):
            ids = candidates[i].nonzero().squeeze(1)
            if not bool(torch.isfinite(low[i]).all()) or not 0 < ids.numel() <= MAX_CANDIDATES:
                picks.append(self._full(hidden[i], banned[i]))
                continue
            picks.append(self._settle(ids, hidden[i]))
        return picks

    @staticmethod
    def _bounds(approx: torch.Tensor, row_norms: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """How far each approximate logit (float32 values of the bfloat16 products) can be from
        the float32 one: ``c ||w|| ||x|| + 1.01 u |a|`` (module docstring), without the bias."""
        return torch.addcmul(row_norms * scale, approx.abs(), approx.new_tensor(1.01 * BF16_UNIT))

    def _settle(self, ids: torch.Tensor, hidden: torch.Tensor) -> int:
        """The candidate ``ids`` with the largest float32 logit for one ``hidden`` state."""
        if ids.numel() == 1:
            return int(ids[0])
        exact = self.weight.index_select(0, ids) @ hidden
        if self.bias is not None:
            exact = exact + self.bias[ids]
        return int(ids[int(exact.argmax())])

    def _full(self, hidden: torch.Tensor, banned: Sequence[int]) -> int:
        """The argmax of the full float32 logits (bad numbers or too many candidates)."""
        logits = self.weight @ hidden
        if self.bias is not None:
            logits = logits + self.bias
        if banned:
            logits[list(banned)] = float("-inf")
        return int(logits.argmax())
