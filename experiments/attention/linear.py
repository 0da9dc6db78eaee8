"""Normalised linear attention (Katharopoulos et al. 2020, arXiv 2006.16236).

``out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)`` with ``S_i = sum_j phi(k_j) v_j^T``
and ``z_i = sum_j phi(k_j)`` over the keys query ``i`` sees. No logit scale is
applied (as in the paper). The feature map is a parameter (elu+1 by default;
relu, squared relu, Taylor-2, cosFormer, Performer, DPFP: see ``_features``)
and sets the state size. The parallel, chunked and recurrent forms of
``_linear`` compute the same function and carry the O(1) state between calls.
"""

from __future__ import annotations

import dataclasses

from experiments.attention import register
from experiments.attention.base import Variant, check_qkv
from experiments.attention._linear import (LinearFamilyConfig, LinearFamilyModule, featurize,
                                           masked_scores, resolve, run)
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class LinearConfig(LinearFamilyConfig):
    eps: float = param(1e-6, "added to the normaliser phi(q)^T z")

    def __post_init__(self):
        super().__post_init__()
        require(self.eps >= 0, f"linear eps must be non-negative, got {self.eps}")


def weights(q, k, *, causal: bool, features=None, **params):
    config, features = resolve(LinearConfig, q, features, params)
    scores = masked_scores(*featurize(features, q, k), causal=causal)  # (B, H, Tq, Tk), non-negative
    return scores / (scores.sum(dim=-1, keepdim=True) + config.eps)


def reference(q, k, v, *, causal: bool, features=None, **params):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, features=features, **params) @ v


def combine(config, num, den, v_sum, count):
    return num / (den + config.eps)


def attend(q, k, v, *, causal: bool, features=None, initial_state=None, output_final_state=False, **params):
    config, features = resolve(LinearConfig, q, features, params)
    return run(config, features, q, k, v, causal=causal, combine=combine, initial_state=initial_state,
               output_final_state=output_final_state)


class LinearAttention(LinearFamilyModule):
    combine = staticmethod(combine)

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, features=self.features, **dataclasses.asdict(self.config))


register(Variant(name="linear", config=LinearConfig, module=LinearAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="normalised linear attention phi(q)S/phi(q)z; phi = elu+1 by default"))
