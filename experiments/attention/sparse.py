"""Sparse normalisers: sparsemax (Martins & Astudillo 2016, arXiv 1602.02068) and 1.5-entmax (Peters,
Niculae, Martins 2019, arXiv 1905.05702).

Sparsemax is the Euclidean projection of the scores onto the simplex; 1.5-entmax
interpolates between softmax (alpha = 1) and sparsemax (alpha = 2). Rows of
both sum to 1 and many weights are exactly 0 (baselines of ReLA, docs/claims.md
R3-R7). The fast path calls the ``entmax`` package (Correia et al. 2019,
arXiv 1909.00015) on scores whose masked entries are ``-inf``; each
``*_reference`` applies the sort-based closed form of those papers row by
row over the visible keys, and the tests compare the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import entmax
import torch

from experiments.attention import register
from experiments.attention.base import AttentionModule, ScaleConfig, Variant, check_qkv, scores


def sparsemax_row(z: torch.Tensor) -> torch.Tensor:
    """Sparsemax of one vector: ``max(z - tau, 0)`` with ``k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}``."""
    sorted_z, _ = torch.sort(z, descending=True)
    ks = torch.arange(1, z.numel() + 1, dtype=z.dtype, device=z.device)
    cumulative = sorted_z.cumsum(0)
    support = int((1 + ks * sorted_z > cumulative).sum())
    tau = (cumulative[support - 1] - 1) / support
    return torch.clamp(z - tau, min=0)


def entmax15_row(z: torch.Tensor) -> torch.Tensor:
    """1.5-entmax of one vector, exact sort-based algorithm: ``[(z/2 - tau)_+]^2``."""
    z = z / 2
    sorted_z, _ = torch.sort(z, descending=True)
    ks = torch.arange(1, z.numel() + 1, dtype=z.dtype, device=z.device)
    mean = sorted_z.cumsum(0) / ks
    mean_sq = sorted_z.square().cumsum(0) / ks
    delta = (1 - ks * (mean_sq - mean.square())) / ks
    tau = mean - torch.sqrt(torch.clamp(delta, min=0))
    support = int((tau <= sorted_z).sum())
    return torch.clamp(z - tau[support - 1], min=0).square()


def rowwise(row_fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """Apply ``row_fn`` to the finite entries of every row; masked (-inf) entries get 0."""
    rows = []
    for row in logits.reshape(-1, logits.shape[-1]):
        visible = torch.isfinite(row)
        out = torch.zeros_like(row)
        rows.append(out.masked_scatter(visible, row_fn(row[visible])))
    return torch.stack(rows).reshape(logits.shape)


@dataclasses.dataclass(frozen=True)
class SparsemaxConfig(ScaleConfig):
    pass


@dataclasses.dataclass(frozen=True)
class Entmax15Config(ScaleConfig):
    pass


def sparsemax_weights(q, k, *, causal: bool, scale: float | None = None):
    return entmax.sparsemax(scores(q, k, causal=causal, scale=scale), dim=-1)  # (B, H, Tq, Tk), -inf where masked


def sparsemax_reference(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return rowwise(sparsemax_row, scores(q, k, causal=causal, scale=scale)) @ v


def sparsemax_attend(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return sparsemax_weights(q, k, causal=causal, scale=scale) @ v


def entmax15_weights(q, k, *, causal: bool, scale: float | None = None):
    return entmax.entmax15(scores(q, k, causal=causal, scale=scale), dim=-1)  # (B, H, Tq, Tk), -inf where masked


def entmax15_reference(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return rowwise(entmax15_row, scores(q, k, causal=causal, scale=scale)) @ v


def entmax15_attend(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return entmax15_weights(q, k, causal=causal, scale=scale) @ v


class SparsemaxAttention(AttentionModule):
    core = staticmethod(sparsemax_attend)
    matrix = staticmethod(sparsemax_weights)


class Entmax15Attention(AttentionModule):
    core = staticmethod(entmax15_attend)
    matrix = staticmethod(entmax15_weights)


register(Variant(name="sparsemax", config=SparsemaxConfig, module=SparsemaxAttention,
                 attend=sparsemax_attend, reference=sparsemax_reference, weights=sparsemax_weights,
                 summary="sparsemax attention (sparse rows that sum to 1)"))
register(Variant(name="entmax15", config=Entmax15Config, module=Entmax15Attention,
                 attend=entmax15_attend, reference=entmax15_reference, weights=entmax15_weights,
                 summary="1.5-entmax attention (sparse rows that sum to 1)"))
