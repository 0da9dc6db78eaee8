"""NormAttention: linear attention without the denominator, normalised at the output.

Qin et al. 2022, "The Devil in Linear Transformer" (TransNormer, arXiv
2210.10340): the kernel normaliser ``phi(q)^T z`` makes the gradients of
linear attention unbounded as a row's mass tends to 0 (docs/claims.md, Q1), so
drop it and normalise the output instead:
``out = W_o RMSNorm(concat_h phi(Q_h) phi(K_h)^T V_h)``. The RMSNorm (learnt
gain, initialised to 1) acts on the concatenated heads, as ReLA's does. The
feature map is a parameter (elu+1 by default; a choice, the paper studies
several).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from experiments.attention import register
from experiments.attention.base import Variant, check_qkv
from experiments.attention._linear import (LinearFamilyConfig, LinearFamilyModule, featurize,
                                           masked_scores, resolve, run)
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class NormLinearConfig(LinearFamilyConfig):
    norm_eps: float = param(1e-6, "RMSNorm epsilon")

    def __post_init__(self):
        super().__post_init__()
        require(self.norm_eps > 0, f"norm_eps must be positive, got {self.norm_eps}")


def weights(q, k, *, causal: bool, features=None, **params):
    """``phi(Q) phi(K)^T`` with masked entries 0: unnormalised, rows need not sum to 1."""
    _, features = resolve(NormLinearConfig, q, features, params)
    return masked_scores(*featurize(features, q, k), causal=causal)


def reference(q, k, v, *, causal: bool, features=None, **params):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, features=features, **params) @ v


def combine(config, num, den, v_sum, count):
    return num


def attend(q, k, v, *, causal: bool, features=None, initial_state=None, output_final_state=False, **params):
    """The per-head numerator; the module's RMSNorm over heads completes the variant."""
    config, features = resolve(NormLinearConfig, q, features, params)
    return run(config, features, q, k, v, causal=causal, combine=combine, initial_state=initial_state,
               output_final_state=output_final_state)


class NormLinearAttention(LinearFamilyModule):
    combine = staticmethod(combine)

    def output_norm(self, config, d_model):
        return nn.RMSNorm(d_model, eps=config.norm_eps)

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, features=self.features, **dataclasses.asdict(self.config))


register(Variant(name="norm_linear", config=NormLinearConfig, module=NormLinearAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="NormAttention: phi(Q)phi(K)^T V with no denominator, RMSNorm on the output"))
