"""Rectified linear attention, ReLA (Zhang, Titov, Sennrich, EMNLP 2021, arXiv 2104.07012).

Following the authors' code (``modules/rela.py`` of their ``zero`` toolkit):

- scores ``S = (Q / sqrt(d_h)) K^T``; masked positions are multiplied to zero,
  so they get weight 0 (not ``-inf``);
- weights ``A = relu(S)`` with no row normalisation: a row may be all zero,
  which is how a head "switches off" for a query;
- heads ``z = concat_h(A_h V_h)``, then an RMSNorm over the concatenated
  heads before the output projection:
  ``W_o(g * z / sqrt(mean(z^2) + eps) * sigmoid(w * z))``.

With ``gate=True`` this is ReLA-g: ``g`` starts at 1 and ``w`` is a
per-channel vector drawn from ``U(-sqrt(3/d), sqrt(3/d))`` (the Glorot-uniform
default for a length-``d`` vector), so the gate starts near 0.5. With
``gate=False`` and ``gain_init="uniform"`` it is ReLA-i; the paper's exact
"specialised initialisation" is not in the code we read, so ``g`` is drawn
from ``U(-sqrt(3/d), sqrt(3/d))`` as two re-implementations do. Attention
dropout is not used (the synthetic tasks do not need it).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from experiments.attention import register
from experiments.attention._common import AttentionModule, Variant, causal_mask, check_qkv
from experiments.config import check_choices, param, require

GAIN_INITS = ("ones", "uniform")


@dataclasses.dataclass(frozen=True)
class ReLAConfig:
    gate: bool = param(True, "sigmoid gate on the RMSNorm output (ReLA-g); False for ReLA-i")
    gain_init: str = param("ones", "init of the RMSNorm gain g: ones, or U(-sqrt(3/d), sqrt(3/d))", choices=GAIN_INITS)
    eps: float = param(1e-6, "RMSNorm epsilon")

    def __post_init__(self):
        check_choices(self)
        require(self.eps > 0, f"ReLA eps must be positive, got {self.eps}")


def weights(q, k, *, causal: bool) -> torch.Tensor:
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    if causal:
        scores = scores * causal_mask(q.shape[-2], k.shape[-2], q.device)
    return torch.relu(scores)


def reference(q, k, v, *, causal: bool) -> torch.Tensor:
    check_qkv(q, k, v)
    return weights(q, k, causal=causal) @ v


attend = reference  # one matrix product is already the direct form; a blockwise kernel is future work


class GatedRMSNorm(nn.Module):
    """``g * z / sqrt(mean(z^2) + eps)``, times ``sigmoid(w * z)`` when gated."""

    def __init__(self, dim: int, *, gate: bool, gain_init: str, eps: float):
        super().__init__()
        bound = math.sqrt(3.0 / dim)
        gain = torch.ones(dim) if gain_init == "ones" else torch.empty(dim).uniform_(-bound, bound)
        self.gain = nn.Parameter(gain)
        self.gate = nn.Parameter(torch.empty(dim).uniform_(-bound, bound)) if gate else None
        self.eps = eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.gain * z * torch.rsqrt(z.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        if self.gate is not None:
            out = out * torch.sigmoid(self.gate * z)
        return out


class ReLAAttention(AttentionModule):
    def __init__(self, config: ReLAConfig, *, d_model: int, num_heads: int):
        super().__init__(config, d_model=d_model, num_heads=num_heads)
        self.norm = GatedRMSNorm(d_model, gate=config.gate, gain_init=config.gain_init, eps=config.eps)

    def mix(self, q, k, v, *, causal):
        return attend(q, k, v, causal=causal)

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal)

    def post(self, z):
        return self.norm(z)


register(Variant(
    name="rela",
    config=ReLAConfig,
    module=ReLAAttention,
    attend=attend,
    reference=reference,
    weights=weights,
    summary="ReLU attention weights with a gated RMSNorm on the heads (ReLA-g)",
))
