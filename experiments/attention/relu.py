"""Plain ReLU attention: ``relu(Q K^T / sqrt d) V`` with no normalisation at all.

The unstable baseline of ReLA's R2 and ReLUFormer's S4 (docs/claims.md): rows do
not sum to one and nothing bounds the output's scale, which grows with the
number of keys (S1: variance ``n sigma^2 / 2``). Masked positions are
multiplied to zero, as in ReLA's code. :func:`relu_scores` is shared by the
rest of the ReLU family (ReLA, relu_len, ReLUFormer). ``attend`` has three
forms (materialised, blockwise, fused Triton); ``reference`` is the matrix.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.attention import register
from experiments.attention.base import AttentionModule, Variant, check_qkv, default_scale, scores
from experiments.attention._elementwise import ElementwiseForm, elementwise_attention
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class ReLUConfig(ElementwiseForm):
    scale: float | None = param(None, "logit scale; None means 1/sqrt(head_dim)")

    def __post_init__(self):
        super().__post_init__()
        require(self.scale is None or self.scale > 0, f"scale must be positive, got {self.scale}")


def relu_scores(q, k, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """``relu(scale Q K^T)``, masked entries multiplied to 0: ``(B, H, Tq, Tk)``."""
    return torch.relu(scores(q * default_scale(q, scale), k, causal=causal, scale=1.0, masked=0.0))


def weights(q, k, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    return relu_scores(q, k, causal=causal, scale=scale)


def reference(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None, form: str = "auto", block_size: int = 256):
    """Materialised, blockwise or fused (see :mod:`experiments.attention._elementwise`)."""
    return elementwise_attention(q, k, v, causal=causal, scale=scale, form=form, block_size=block_size)


class ReLUAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="relu", config=ReLUConfig, module=ReLUAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="plain ReLU attention, no normalisation (the unstable baseline)"))
