"""Normalised linear attention (Katharopoulos et al. 2020, arXiv 2006.16236).

``out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)`` with ``S_i = sum_j phi(k_j) v_j^T``
and ``z_i = sum_j phi(k_j)`` over the keys query ``i`` sees, and the feature map
``phi(x) = elu(x) + 1``. No logit scale is applied (as in the paper).

Two forms compute the same function:

- ``parallel``: the masked ``(Tq, Tk)`` matrix ``phi(Q) phi(K)^T`` (quadratic
  in length; non-causal attention uses the associative ``phi(Q)(phi(K)^T V)``);
- ``recurrent``: the fast-weight view (Schlag et al. 2021, arXiv 2102.11174),
  one :func:`recurrent_step` per token carrying an O(1) state ``(S, z)``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from experiments.attention import register
from experiments.attention._common import AttentionModule, Variant, causal_mask, check_qkv
from experiments.config import check_choices, param, require

FEATURE_MAPS = {
    "elu1": lambda x: F.elu(x) + 1.0,  # Katharopoulos et al. 2020
}
FORMS = ("parallel", "recurrent")


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    feature_map: str = param("elu1", "feature map phi", choices=tuple(FEATURE_MAPS))
    form: str = param("parallel", "parallel masked form or O(1)-state recurrent form", choices=FORMS)
    eps: float = param(1e-6, "added to the normaliser phi(q)^T z")

    def __post_init__(self):
        check_choices(self)
        require(self.eps >= 0, f"linear eps must be non-negative, got {self.eps}")


def weights(q, k, *, causal: bool, feature_map: str = "elu1", eps: float = 1e-6) -> torch.Tensor:
    phi = FEATURE_MAPS[feature_map]
    scores = phi(q) @ phi(k).transpose(-2, -1)  # (B, H, Tq, Tk), non-negative
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)
    return scores / (scores.sum(dim=-1, keepdim=True) + eps)


def reference(q, k, v, *, causal: bool, feature_map: str = "elu1", eps: float = 1e-6) -> torch.Tensor:
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, feature_map=feature_map, eps=eps) @ v


def parallel(q, k, v, *, causal: bool, feature_map: str = "elu1", eps: float = 1e-6) -> torch.Tensor:
    phi = FEATURE_MAPS[feature_map]
    fq, fk = phi(q), phi(k)
    if not causal:
        state = fk.transpose(-2, -1) @ v  # (B, H, D, Dv)
        normaliser = fq @ fk.sum(dim=-2).unsqueeze(-1)  # (B, H, Tq, 1)
        return (fq @ state) / (normaliser + eps)
    scores = (fq @ fk.transpose(-2, -1)).masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)
    return (scores @ v) / (scores.sum(dim=-1, keepdim=True) + eps)


def init_state(q: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Empty fast-weight state: ``S`` is ``(B, H, D, Dv)``, ``z`` is ``(B, H, D)``."""
    batch, heads, _, dim = q.shape
    return (q.new_zeros(batch, heads, dim, v.shape[-1]), q.new_zeros(batch, heads, dim))


def recurrent_step(state, q_t, k_t, v_t, *, feature_map: str = "elu1", eps: float = 1e-6):
    """One token: ``q_t, k_t`` are ``(B, H, D)``, ``v_t`` is ``(B, H, Dv)``; returns (out_t, state)."""
    phi = FEATURE_MAPS[feature_map]
    fq, fk = phi(q_t), phi(k_t)
    memory, normaliser = state
    memory = memory + fk.unsqueeze(-1) * v_t.unsqueeze(-2)  # S += phi(k) v^T
    normaliser = normaliser + fk
    out = (fq.unsqueeze(-2) @ memory).squeeze(-2) / ((fq * normaliser).sum(-1, keepdim=True) + eps)
    return out, (memory, normaliser)


def recurrent(q, k, v, *, causal: bool = True, feature_map: str = "elu1", eps: float = 1e-6) -> torch.Tensor:
    if not causal or q.shape[-2] != k.shape[-2]:
        raise ValueError("the recurrent form computes causal self-attention (Tq == Tk) only")
    state = init_state(q, v)
    outputs = []
    for t in range(q.shape[-2]):
        out, state = recurrent_step(state, q[:, :, t], k[:, :, t], v[:, :, t], feature_map=feature_map, eps=eps)
        outputs.append(out)
    return torch.stack(outputs, dim=-2)  # (B, H, T, Dv)


_FORMS = {"parallel": parallel, "recurrent": recurrent}


def attend(q, k, v, *, causal: bool, feature_map: str = "elu1", eps: float = 1e-6, form: str = "parallel"):
    check_qkv(q, k, v)
    return _FORMS[form](q, k, v, causal=causal, feature_map=feature_map, eps=eps)


class LinearAttention(AttentionModule):
    def mix(self, q, k, v, *, causal):
        c = self.config
        return attend(q, k, v, causal=causal, feature_map=c.feature_map, eps=c.eps, form=c.form)

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, feature_map=self.config.feature_map, eps=self.config.eps)


register(Variant(
    name="linear",
    config=LinearConfig,
    module=LinearAttention,
    attend=attend,
    reference=reference,
    weights=weights,
    summary="normalised linear attention, phi = elu+1, parallel or recurrent form",
))
