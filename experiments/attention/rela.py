"""Rectified linear attention, ReLA (Zhang, Titov, Sennrich, EMNLP 2021, arXiv 2104.07012).

Following the authors' code (``modules/rela.py`` of their ``zero`` toolkit):

- scores ``S = (Q / sqrt(d_h)) K^T``; masked positions are multiplied to zero,
  so they get weight 0 (not ``-inf``);
- weights ``A = relu(S)`` with no row normalisation: a row may be all zero,
  which is how a head "switches off" for a query;
- heads ``z = concat_h(A_h V_h)``, then an RMSNorm over the concatenated
  heads before the output projection.

Two variants:

- ``rela_g`` (alias ``rela``): ``W_o(g * z / sqrt(mean(z^2) + eps) * sigmoid(w * z))``,
  ``g`` initialised to 1 and ``w`` a per-channel vector drawn from
  ``U(-sqrt(3/d), sqrt(3/d))`` (the Glorot-uniform default for a length-``d``
  vector), so the gate starts near 0.5.
- ``rela_i``: the same RMSNorm without the gate and a "specialised
  initialisation" of ``g``. The exact rule is not in the code we read; ``g``
  is drawn from ``U(-sqrt(3/d), sqrt(3/d))`` as two re-implementations do
  (``gain_init="uniform"``; ``"ones"`` is the plain alternative).

Attention dropout is not used (the synthetic tasks do not need it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn

from experiments.attention import register
from experiments.attention.base import AttentionModule, Variant
from experiments.attention._elementwise import ElementwiseForm
from experiments.attention.relu import attend as relu_attend, reference as relu_reference, relu_scores
from experiments.config import param, require

GAIN_INITS = ("ones", "uniform")


@dataclasses.dataclass(frozen=True)
class ReLAGConfig(ElementwiseForm):
    gated: ClassVar[bool] = True
    gain_init: str = param("ones", "init of the RMSNorm gain g: ones, or U(-sqrt(3/d), sqrt(3/d))", choices=GAIN_INITS)
    eps: float = param(1e-6, "RMSNorm epsilon")

    def __post_init__(self):
        super().__post_init__()
        require(self.eps > 0, f"ReLA eps must be positive, got {self.eps}")


@dataclasses.dataclass(frozen=True)
class ReLAIConfig(ReLAGConfig):
    gated: ClassVar[bool] = False
    gain_init: str = param("uniform", "init of the RMSNorm gain g: U(-sqrt(3/d), sqrt(3/d)) (the "
                           "specialised init), or ones (a plain RMSNorm, no gate and gain 1: the control that "
                           "ReLA's 'special init or a gate' implies, arXiv 2104.07012)", choices=GAIN_INITS)


def weights(q, k, *, causal: bool) -> torch.Tensor:
    return relu_scores(q, k, causal=causal)


def reference(q, k, v, *, causal: bool) -> torch.Tensor:
    return relu_reference(q, k, v, causal=causal)


def attend(q, k, v, *, causal: bool, form: str = "auto", block_size: int = 256) -> torch.Tensor:
    return relu_attend(q, k, v, causal=causal, form=form, block_size=block_size)


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
    core = staticmethod(attend)
    matrix = staticmethod(weights)

    def output_norm(self, config, d_model):
        return GatedRMSNorm(d_model, gate=config.gated, gain_init=config.gain_init, eps=config.eps)


register(Variant(name="rela_g", config=ReLAGConfig, module=ReLAAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="ReLA-g: ReLU weights, gated RMSNorm over the heads (as in the authors' code)"),
         aliases=("rela",))

register(Variant(name="rela_i", config=ReLAIConfig, module=ReLAAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="ReLA-i: ReLU weights, RMSNorm with a specialised gain init, no gate"))
