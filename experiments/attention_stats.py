"""Statistics of attention matrices, per layer and head.

All functions take a weight matrix ``(B, H, Tq, Tk)`` as returned by a
variant's ``weights`` (or ``attention_maps`` of a model) and the mask of
the keys each query may see, and return one number per head ``(H,)``
averaged over batch and queries, so they plot directly:

- :func:`sparsity_rate`: zeros among the visible (query, key) pairs (ReLA's
  R1; 50% at initialisation for ReLU of symmetric random scores, so only a
  rise above that is learned sparsity).
- :func:`null_rate`: all-zero rows among the rows (ReLA's R6, "switched off"
  heads; always 0 for softmax, sparsemax and entmax, whose rows sum to 1).
- :func:`row_entropy`: entropy of each row after normalising it to sum 1.
- :func:`head_diversity`: Jensen-Shannon divergence across heads,
  ``Ent(mean_h p_h) - mean_h Ent(p_h)`` per query (ReLA's R5).
- :func:`top_mass`: share of a row's mass held by its top ``p`` fraction of
  entries (ReLUFormer's S6).
- :func:`first_mass`: share of a row's mass on the first key, over the rows
  that see more than one key (the "attention sink" of trained softmax heads,
  Xiao et al. 2023, arXiv 2309.17453; B3).

Rows are normalised by their sum before entropies are taken; all-zero rows
have no distribution and are left out of the entropy and diversity averages
(and counted by :func:`null_rate`). Weights are compared with zero exactly;
signed weights (InLine) are taken by absolute value for the entropies.
"""

from __future__ import annotations

import torch

from experiments.attention.base import causal_mask


def visible_mask(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """``(Tq, Tk)`` boolean mask of the pairs a query may attend to."""
    tq, tk = weights.shape[-2:]
    if causal:
        return causal_mask(tq, tk, weights.device)
    return torch.ones(tq, tk, dtype=torch.bool, device=weights.device)


def sparsity_rate(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    mask = visible_mask(weights, causal=causal)
    zeros = ((weights == 0) & mask).sum(dim=(0, 2, 3)).double()
    return zeros / (mask.sum() * weights.shape[0])


def null_rate(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    dead = (weights == 0).all(dim=-1)  # (B, H, Tq)
    return dead.double().mean(dim=(0, 2))


def _distributions(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows normalised to sum 1, and which rows have any mass: ``(B, H, Tq, Tk)``, ``(B, H, Tq)``."""
    mass = weights.abs().double()
    total = mass.sum(dim=-1, keepdim=True)
    alive = total.squeeze(-1) > 0
    return mass / torch.where(total > 0, total, torch.ones_like(total)), alive


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.where(p > 0, p, torch.ones_like(p)).log()).sum(dim=-1)


def row_entropy(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    p, alive = _distributions(weights)
    entropy = _entropy(p)
    return (entropy * alive).sum(dim=(0, 2)) / alive.sum(dim=(0, 2)).clamp_min(1)


def head_diversity(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """Jensen-Shannon divergence across heads, averaged over queries where every head has mass.

    Returns a ``(1,)`` tensor: diversity is a property of the set of heads.
    """
    p, alive = _distributions(weights)
    rows = alive.all(dim=1)  # (B, Tq): every head has a distribution
    mixture = p.mean(dim=1)  # (B, Tq, Tk)
    js = _entropy(mixture) - _entropy(p).mean(dim=1)  # (B, Tq)
    return ((js * rows).sum() / rows.sum().clamp_min(1)).reshape(1)


def top_mass(weights: torch.Tensor, *, causal: bool, fraction: float = 0.002) -> torch.Tensor:
    """Mass share of the top ``fraction`` of visible entries of each row (at least one entry)."""
    mask = visible_mask(weights, causal=causal)
    visible = mask.sum(dim=-1)  # (Tq,)
    mass = weights.abs().double().masked_fill(~mask, 0.0)
    ordered = mass.sort(dim=-1, descending=True).values
    keep = torch.clamp((visible.double() * fraction).ceil().long(), min=1)  # (Tq,)
    ranks = torch.arange(weights.shape[-1], device=weights.device)
    top = (ordered * (ranks < keep.unsqueeze(-1))).sum(dim=-1)
    total = ordered.sum(dim=-1)
    alive = total > 0
    share = top / torch.where(alive, total, torch.ones_like(total))
    return (share * alive).sum(dim=(0, 2)) / alive.sum(dim=(0, 2)).clamp_min(1)


def first_mass(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """Share of each row's mass on key 0, averaged over rows with mass that see at least two keys."""
    mask = visible_mask(weights, causal=causal)
    mass = weights.abs().double().masked_fill(~mask, 0.0)
    total = mass.sum(dim=-1)  # (B, H, Tq)
    counted = (total > 0) & (mask.sum(dim=-1) >= 2)  # a query that sees one key has nothing else to weigh
    share = mass[..., 0] / torch.where(counted, total, torch.ones_like(total))
    return (share * counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2)).clamp_min(1)


def row_mass(weights: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """Mean of each row's total weight ``sum_j w_ij``: 1 for a normalised variant; for an unnormalised one the
    scale its output takes from the number of keys and the score scale."""
    return weights.double().sum(dim=-1).mean(dim=(0, 2))


STATISTICS = {
    "sparsity": sparsity_rate,
    "null_rate": null_rate,
    "entropy": row_entropy,
    "head_diversity": head_diversity,
    "top_mass": top_mass,
    "first_mass": first_mass,
    "row_mass": row_mass,
}


def summarise(layer_weights: list[torch.Tensor], *, causal: bool = True) -> list[dict[str, list[float]]]:
    """Every statistic for every layer: ``[{name: per-head values}, ...]``."""
    return [{name: fn(w, causal=causal).tolist() for name, fn in STATISTICS.items()} for w in layer_weights]
