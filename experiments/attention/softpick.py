"""Softpick, the rectified softmax (Zuhri, Fuadi, Aji 2025, arXiv 2504.20966).

    w_ij = relu(exp(z_ij) - 1) / sum_l |exp(z_il) - 1|,      z = q . k / sqrt(d)

Keys with a negative logit get weight 0 but still count in the denominator,
so a row may be all zero (null attention, as ReLA's) and the weights of a row
sum to at most 1: there is no pressure to park mass on a sink token. Computed
stably with ``m = max(0, max_l z_il)`` over the keys the query sees,

    w_ij = relu(e^(z_ij - m) - e^(-m)) / (sum_l |e^(z_il - m) - e^(-m)| + eps),

which is the formula above with ``eps e^m`` in place of 0 in the denominator
(``eps`` keeps an all-zero row finite). Masked keys take no part. One form:
the weights matrix (no fused kernel here).
"""

from __future__ import annotations

import dataclasses

from experiments.attention import register
from experiments.attention.base import AttentionModule, ScaleConfig, Variant, causal_mask, check_qkv, scores
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class SoftpickConfig(ScaleConfig):
    eps: float = param(1e-6, "added to the (shifted) denominator")

    def __post_init__(self):
        super().__post_init__()
        require(self.eps >= 0, f"eps must be non-negative, got {self.eps}")


def weights(q, k, *, causal: bool, scale: float | None = None, eps: float = 1e-6):
    z = scores(q, k, causal=causal, scale=scale)  # (B, H, Tq, Tk), -inf where masked
    m = z.amax(dim=-1, keepdim=True).clamp_min(0.0)  # (B, H, Tq, 1)
    shifted = (z - m).exp() - (-m).exp()  # e^(z - m) - e^(-m): 0 at z = 0, and at a masked key it is -e^(-m)
    if causal:
        shifted = shifted.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)
    return shifted.clamp_min(0.0) / (shifted.abs().sum(dim=-1, keepdim=True) + eps)


def reference(q, k, v, *, causal: bool, scale: float | None = None, eps: float = 1e-6):
    """The formula unshifted, ``relu(e^z - 1) / (sum |e^z - 1| + eps e^m)``: overflows past z ~ 88 in float32."""
    check_qkv(q, k, v)
    z = scores(q, k, causal=causal, scale=scale)
    m = z.amax(dim=-1, keepdim=True).clamp_min(0.0)
    e = z.exp() - 1.0  # -1 at a masked key (e^-inf = 0)
    if causal:
        e = e.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)
    return (e.clamp_min(0.0) / (e.abs().sum(dim=-1, keepdim=True) + eps * m.exp())) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None, eps: float = 1e-6):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale, eps=eps) @ v


class SoftpickAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="softpick", config=SoftpickConfig, module=SoftpickAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="softpick relu(e^z - 1) / sum |e^z - 1|: rows may be all zero, no sink"))
