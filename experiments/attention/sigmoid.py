"""Sigmoid attention (Ramapuram et al. 2024, arXiv 2409.04431).

``w_ij = sigmoid(q_i . k_j / sqrt d + b)`` with no row normalisation and, by
default, ``b = -log n_i``, ``n_i`` the number of keys query ``i`` sees: with
``b = 0`` a row sums to about ``n/2``; with ``-log n`` it tends to
``e^{sigma^2/2}`` (docs/claims.md, scaling rules). The paper takes ``n`` as the
sequence length; here it is per query (``i + 1`` under a causal mask) so that
decoding one token at a time gives the same weights as the full forward.
Masked positions get weight 0. ``bias`` set to a number fixes ``b``.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.attention import register
from experiments.attention.base import (AttentionModule, Variant, causal_mask, check_qkv, default_scale, scores,
                                        visible_counts)
from experiments.attention._elementwise import ElementwiseForm, elementwise_attention
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class SigmoidConfig(ElementwiseForm):
    bias: float | None = param(None, "logit bias b; None means -log(number of visible keys)")
    scale: float | None = param(None, "logit scale; None means 1/sqrt(head_dim)")

    def __post_init__(self):
        super().__post_init__()
        require(self.scale is None or self.scale > 0, f"scale must be positive, got {self.scale}")


def weights(q, k, *, causal: bool, bias: float | None = None, scale: float | None = None):
    logits = scores(q * default_scale(q, scale), k, causal=False, scale=1.0)  # (B, H, Tq, Tk); sigmoid(-inf) would be 0 too, but masked
    if bias is None:
        offset = -torch.log(visible_counts(q.shape[-2], k.shape[-2], causal=causal, device=q.device, dtype=q.dtype))
    else:
        offset = bias
    out = torch.sigmoid(logits + offset)
    if causal:
        out = out * causal_mask(q.shape[-2], k.shape[-2], q.device)
    return out


def reference(q, k, v, *, causal: bool, bias: float | None = None, scale: float | None = None):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, bias=bias, scale=scale) @ v


def attend(q, k, v, *, causal: bool, bias: float | None = None, scale: float | None = None, form: str = "auto",
           block_size: int = 256):
    """The bias (``-log n_i`` or a constant) inside the element-wise forms."""
    return elementwise_attention(q, k, v, causal=causal, scale=scale, activation="sigmoid",
                                 bias_mode="log_n" if bias is None else "constant",
                                 bias=0.0 if bias is None else bias, form=form, block_size=block_size)


class SigmoidAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="sigmoid", config=SigmoidConfig, module=SigmoidAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="sigmoid attention with bias -log n (Ramapuram et al.)"))
