"""Softmax attention followed by a LayerNorm (ReLUFormer, Shen et al. 2023, arXiv 2302.06461).

``out = W_o LN(concat_h softmax(Q_h K_h^T / sqrt d) V_h)``. ReLUFormer's
key-value-memory view: with the LayerNorm, softmax memory behaves like ReLU
memory, because LN is scale invariant and undoes the ``1/n`` shrinkage of a
normalised row (docs/claims.md, S2). The LayerNorm acts on the concatenated heads
with a learnt affine transform (a choice; the paper's FFN analogue has one
memory). The functional core is softmax's.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from experiments.attention import register
from experiments.attention.base import AttentionModule, ScaleConfig, Variant
from experiments.attention.softmax import attend, reference, weights
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class SoftmaxLNConfig(ScaleConfig):
    ln_eps: float = param(1e-5, "LayerNorm epsilon")

    def __post_init__(self):
        super().__post_init__()
        require(self.ln_eps > 0, f"ln_eps must be positive, got {self.ln_eps}")


class SoftmaxLNAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)

    def output_norm(self, config, d_model):
        return nn.LayerNorm(d_model, eps=config.ln_eps)


register(Variant(name="softmax_ln", config=SoftmaxLNConfig, module=SoftmaxLNAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="softmax attention with a LayerNorm on its output (ReLUFormer's S2)"))
