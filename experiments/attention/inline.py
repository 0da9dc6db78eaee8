"""InLine: injective linear attention (Han et al., NeurIPS 2024, arXiv 2412.06590).

Normalised linear attention divides by the row sum, so with a positively
homogeneous feature map (ReLU) the queries ``q`` and ``alpha q`` get the same
weights: the map from queries to weights is not injective (docs/claims.md, H1).
InLine centres instead of dividing:

    w_ij = phi(q_i).phi(k_j) - (1/n_i) sum_l phi(q_i).phi(k_l) + 1/n_i

over the ``n_i`` keys query ``i`` sees, so every row still sums to 1 but the
weights scale with ``q``. It stays linear in length:
``out_i = num_i - (den_i / n_i) V_i + V_i / n_i`` with ``V_i = sum_j v_j``.
Weights may be negative. The feature map is a parameter; ReLU by default
(a choice: it is the case H1 is about).
"""

from __future__ import annotations

import dataclasses

from experiments.attention import register
from experiments.attention._features import FEATURE_MAPS
from experiments.attention.base import Variant, causal_mask, check_qkv, visible_counts
from experiments.attention._linear import (LinearFamilyConfig, LinearFamilyModule, featurize,
                                           masked_scores, resolve, run)
from experiments.config import param


@dataclasses.dataclass(frozen=True)
class InLineConfig(LinearFamilyConfig):
    feature_map: str = param("relu", "feature map phi", choices=tuple(FEATURE_MAPS))


def weights(q, k, *, causal: bool, features=None, **params):
    _, features = resolve(InLineConfig, q, features, params)
    scores = masked_scores(*featurize(features, q, k), causal=causal)  # (B, H, Tq, Tk)
    counts = visible_counts(q.shape[-2], k.shape[-2], causal=causal, device=q.device, dtype=q.dtype)  # (Tq, 1)
    centred = scores + (1 - scores.sum(dim=-1, keepdim=True)) / counts
    if causal:
        return centred.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)
    return centred


def reference(q, k, v, *, causal: bool, features=None, **params):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, features=features, **params) @ v


def combine(config, num, den, v_sum, count):
    return num + (v_sum - den * v_sum) / count


def attend(q, k, v, *, causal: bool, features=None, initial_state=None, output_final_state=False, **params):
    config, features = resolve(InLineConfig, q, features, params)
    return run(config, features, q, k, v, causal=causal, combine=combine, value_sums=True,
               initial_state=initial_state, output_final_state=output_final_state)


class InLineAttention(LinearFamilyModule):
    combine = staticmethod(combine)
    value_sums = True

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, features=self.features, **dataclasses.asdict(self.config))


register(Variant(name="inline", config=InLineConfig, module=InLineAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="InLine: injective linear attention, centred instead of divided (rows sum to 1)"))
