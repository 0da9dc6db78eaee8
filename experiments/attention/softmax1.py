"""Off-by-one softmax, "softmax_1" (Miller 2023, "Attention Is Off By One"; the sink logit of
Xiao et al. 2023, arXiv 2309.17453, fixed at 0).

    w_ij = exp(z_ij) / (1 + sum_l exp(z_il)),      z = q . k / sqrt(d)

Softmax with one more logit, fixed at 0, whose value is the zero vector: a
row may put its mass nowhere (the weights sum to less than 1) instead of on
a token that carries no information, the "attention sink" that trained
softmax heads form on the first token (Xiao et al.). The fast path is that
reading: SDPA over a zero key and zero value prepended to the keys (its logit
is exactly 0); :func:`reference` is the formula.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from experiments.attention import register
from experiments.attention.base import AttentionModule, ScaleConfig, Variant, causal_mask, check_qkv, scores


@dataclasses.dataclass(frozen=True)
class Softmax1Config(ScaleConfig):
    pass


def weights(q, k, *, causal: bool, scale: float | None = None):
    z = scores(q, k, causal=causal, scale=scale)  # (B, H, Tq, Tk), -inf where masked
    top = z.amax(dim=-1, keepdim=True).clamp_min(0.0)  # the extra logit 0 takes part in the maximum
    e = (z - top).exp()
    return e / ((-top).exp() + e.sum(dim=-1, keepdim=True))


def reference(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    sink = k.new_zeros(*k.shape[:2], 1, k.shape[-1])  # (B, H, 1, D): logit q . 0 = 0
    keys = torch.cat([sink, k], dim=-2)  # (B, H, 1 + Tk, D)
    values = torch.cat([v.new_zeros(*v.shape[:2], 1, v.shape[-1]), v], dim=-2)  # the sink adds nothing
    # end-aligned over 1 + Tk keys: query i sees the sink and keys j <= i + (Tk - Tq)
    mask = causal_mask(q.shape[-2], keys.shape[-2], q.device) if causal else None
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)


class Softmax1Attention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="softmax1", config=Softmax1Config, module=Softmax1Attention,
                 attend=attend, reference=reference, weights=weights,
                 summary="off-by-one softmax exp(z)/(1 + sum exp(z)): a zero logit a row may give its mass to"))
