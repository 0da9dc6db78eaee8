"""Shared pieces of the sparse normalisers (sparsemax, 1.5-entmax).

The fast path calls the ``entmax`` package (Peters, Niculae, Martins 2019,
arXiv 1905.05702; Correia et al. 2019, arXiv 1909.00015) on scores whose
masked entries are ``-inf``. The readable references below implement the
sort-based closed forms of those papers row by row over the visible keys, and
the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from experiments.attention.base import scores


def masked_scores(q, k, *, causal: bool, scale: float | None) -> torch.Tensor:
    return scores(q, k, causal=causal, scale=scale)  # (B, H, Tq, Tk), -inf where masked


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


def rowwise(row_fn: Callable[[torch.Tensor], torch.Tensor], scores: torch.Tensor) -> torch.Tensor:
    """Apply ``row_fn`` to the finite entries of every row; masked (-inf) entries get 0."""
    rows = []
    for row in scores.reshape(-1, scores.shape[-1]):
        visible = torch.isfinite(row)
        out = torch.zeros_like(row)
        rows.append(out.masked_scatter(visible, row_fn(row[visible])))
    return torch.stack(rows).reshape(scores.shape)
