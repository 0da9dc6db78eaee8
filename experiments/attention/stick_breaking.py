"""Stick-breaking attention (Tan, Shen, Chen, Courville, Panda 2024, "Scaling Stick-Breaking
Attention", arXiv 2410.17980).

Each query breaks a stick of length 1 from the nearest key outward: key ``j``
takes the share ``beta_ij = sigmoid(z_ij)`` of what the nearer keys left,

    w_ij = beta_ij prod_{j < k <= i} (1 - beta_ik),      z = q . k / sqrt(d),

so recency is built in (no position embedding is needed) and the weights of
a row sum to ``1 - prod_k (1 - beta_ik) <= 1``: what is left of the stick goes
nowhere. The paper's query skips its own key by default (``k < i``); here a
query sees keys ``j <= i`` like every variant of this registry (the product
then starts at the query's own key, as in the formula above). Without a
causal mask the keys are broken from the last one backwards. Computed in log
space, ``log w_ij = log sigmoid(z_ij) + sum_{k > j} log sigmoid(-z_ik)`` over
the visible ``k``, with a reversed cumulative sum; :func:`reference` is the
product written out key by key.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from experiments.attention import register
from experiments.attention.base import AttentionModule, ScaleConfig, Variant, causal_mask, check_qkv, scores


@dataclasses.dataclass(frozen=True)
class StickBreakingConfig(ScaleConfig):
    pass


def weights(q, k, *, causal: bool, scale: float | None = None):
    z = scores(q, k, causal=False, scale=scale)  # (B, H, Tq, Tk)
    visible = causal_mask(q.shape[-2], k.shape[-2], q.device) if causal else None
    keep = F.logsigmoid(-z)  # log(1 - beta_ik)
    if visible is not None:
        keep = keep.masked_fill(~visible, 0.0)
    # sum over the visible k > j: the total from j on, minus k = j itself
    later = keep.flip(-1).cumsum(dim=-1).flip(-1) - keep
    out = (F.logsigmoid(z) + later).exp()
    return out if visible is None else out.masked_fill(~visible, 0.0)


def reference(q, k, v, *, causal: bool, scale: float | None = None):
    """The product, key by key from the nearest visible one: ``w_ij = beta_ij * (stick left by keys > j)``."""
    check_qkv(q, k, v)
    beta = torch.sigmoid(scores(q, k, causal=False, scale=scale))  # (B, H, Tq, Tk)
    tq, tk = beta.shape[-2:]
    visible = causal_mask(tq, tk, q.device) if causal else torch.ones(tq, tk, dtype=torch.bool, device=q.device)
    columns = []
    left = beta.new_ones(*beta.shape[:-1])  # (B, H, Tq): the stick not yet taken
    for j in reversed(range(tk)):
        seen = visible[:, j]  # (Tq,)
        columns.append(torch.where(seen, beta[..., j] * left, 0.0))
        left = torch.where(seen, left * (1 - beta[..., j]), left)
    return torch.stack(columns[::-1], dim=-1) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale) @ v


class StickBreakingAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="stick_breaking", config=StickBreakingConfig, module=StickBreakingAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="stick-breaking sigmoid(z_ij) prod_{k>j}(1 - sigmoid(z_ik)): recency built in, rows sum <= 1"))
