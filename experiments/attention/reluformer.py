"""ReLUFormer self-attention (Shen et al. 2023, arXiv 2302.06461).

``h_i = sum_{j <= n_i} relu(q_i . k_j * scale) v_j / (gamma * sqrt(n_i / 2))``
with ``gamma`` a learnable scalar per head initialised to 1 and ``n_i`` the
number of keys query ``i`` sees. The ``sqrt(n/2)`` factor keeps the output
variance Theta(1) in ``n`` (docs/claims.md, S1). ``scale`` defaults to
``1/sqrt(head_dim)`` (a choice: the secondary sources write ``relu(q.k)``; the
usual logit scale keeps ``q.k`` at unit variance at initialisation).

Two regularisers on each row's weights ``s_i`` (their weights in the paper
are not known to us, so they are parameters, 0 by default):

- normalisation loss ``|log sum_j s_ij|`` (pulls row sums towards 1);
- entropy margin ``max(H(s_i / sum_j s_ij) - C, 0)`` with
  ``C = entropy_margin * log n_i`` (``0.7 log n`` in the paper).

Both are averaged over rows with non-zero mass and reported through
:meth:`aux_losses`, which the trainer adds to the task loss.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from experiments.attention import register
from experiments.attention.base import AttentionModule, Variant, check_qkv, visible_counts
from experiments.attention._elementwise import ElementwiseForm, elementwise_attention
from experiments.attention.relu import relu_scores
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class ReLUFormerConfig(ElementwiseForm):
    scale: float | None = param(None, "logit scale; None means 1/sqrt(head_dim)")
    norm_loss_weight: float = param(0.0, "weight of the row-sum loss |log sum_j s_ij|")
    entropy_loss_weight: float = param(0.0, "weight of the entropy-margin loss max(H - C, 0)")
    entropy_margin: float = param(0.7, "C = entropy_margin * log n")

    def __post_init__(self):
        super().__post_init__()
        require(self.scale is None or self.scale > 0, f"scale must be positive, got {self.scale}")
        require(self.norm_loss_weight >= 0, f"norm_loss_weight must be non-negative, got {self.norm_loss_weight}")
        require(self.entropy_loss_weight >= 0,
                f"entropy_loss_weight must be non-negative, got {self.entropy_loss_weight}")
        require(self.entropy_margin > 0, f"entropy_margin must be positive, got {self.entropy_margin}")


def weights(q, k, *, causal: bool, scale: float | None = None, gamma: torch.Tensor | float = 1.0):
    """``relu(q.k scale) / (gamma sqrt(n_i / 2))``; ``gamma`` a float or ``(H,)`` tensor."""
    counts = visible_counts(q.shape[-2], k.shape[-2], causal=causal, device=q.device, dtype=q.dtype)  # (Tq, 1)
    if isinstance(gamma, torch.Tensor):
        gamma = gamma.to(q.dtype).view(-1, 1, 1)  # (H, 1, 1)
    return relu_scores(q, k, causal=causal, scale=scale) / (gamma * torch.sqrt(counts / 2))


def reference(q, k, v, *, causal: bool, scale: float | None = None, gamma: torch.Tensor | float = 1.0):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale, gamma=gamma) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None, gamma: torch.Tensor | float = 1.0,
           form: str = "auto", block_size: int = 256):
    """``1/sqrt(n_i/2)`` as the element-wise forms' row-scale epilogue; the per-head ``1/gamma`` after it."""
    out = elementwise_attention(q, k, v, causal=causal, scale=scale, row_mode="sqrt_half_count", form=form,
                                block_size=block_size)
    if isinstance(gamma, torch.Tensor):
        gamma = gamma.to(q.dtype).view(-1, 1, 1)
    return out / gamma


def regularisers(matrix: torch.Tensor, *, causal: bool, entropy_margin: float = 0.7) -> dict[str, torch.Tensor]:
    """The two row losses of a ``(B, H, Tq, Tk)`` weight matrix, averaged over rows with mass."""
    tq, tk = matrix.shape[-2:]
    mass = matrix.sum(dim=-1)  # (B, H, Tq)
    alive = mass > 0
    safe_mass = torch.where(alive, mass, torch.ones_like(mass))
    norm_loss = torch.where(alive, safe_mass.log().abs(), torch.zeros_like(mass))
    p = matrix / safe_mass.unsqueeze(-1)
    entropy = -(p * torch.where(p > 0, p, torch.ones_like(p)).log()).sum(dim=-1)
    counts = visible_counts(tq, tk, causal=causal, device=matrix.device, dtype=matrix.dtype).squeeze(-1)
    margin = torch.relu(entropy - entropy_margin * counts.log())
    rows = alive.sum().clamp_min(1)
    return {"norm": norm_loss.sum() / rows, "entropy": torch.where(alive, margin, 0.0).sum() / rows}


class ReLUFormerAttention(AttentionModule):
    def __init__(self, config, *, d_model, num_heads):
        super().__init__(config, d_model=d_model, num_heads=num_heads)
        self.gamma = nn.Parameter(torch.ones(num_heads))
        self._aux: dict[str, torch.Tensor] = {}

    @property
    def _regularised(self) -> bool:
        return self.config.norm_loss_weight > 0 or self.config.entropy_loss_weight > 0

    def mix(self, q, k, v, *, causal):
        if not (self._regularised and self.training):  # the row losses need the matrix; the output does not
            return attend(q, k, v, causal=causal, scale=self.config.scale, gamma=self.gamma, form=self.config.form,
                          block_size=self.config.block_size)
        matrix = weights(q, k, causal=causal, scale=self.config.scale, gamma=self.gamma)
        losses = regularisers(matrix, causal=causal, entropy_margin=self.config.entropy_margin)
        self._aux = {
            "reluformer_norm": self.config.norm_loss_weight * losses["norm"],
            "reluformer_entropy": self.config.entropy_loss_weight * losses["entropy"],
        }
        return matrix @ v

    def aux_losses(self):
        aux, self._aux = self._aux, {}
        return aux

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, scale=self.config.scale, gamma=self.gamma)


register(Variant(name="reluformer", config=ReLUFormerConfig, module=ReLUFormerAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="ReLUFormer: ReLU weights / (gamma sqrt(n/2)), optional row regularisers"))
