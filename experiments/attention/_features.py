"""Feature maps ``phi`` for the linear-attention family, one small class each.

A feature map is an ``nn.Module`` built from ``(head_dim, config)``; calling it
on ``(B, H, T, D)`` with the tokens' absolute positions ``(T,)`` returns
``(B, H, T, dim)``. ``dim`` is the feature dimension, which sets the size of
the fast-weight state (``dim x head_dim`` per head) and hence the recall
capacity (docs/claims.md, K2). Maps with parameters that are not learnt (Performer's
random projection) draw them from ``feature_seed`` so a config pins them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FeatureMap(nn.Module):
    dim: int

    def __init__(self, head_dim: int, config):
        super().__init__()
        self.head_dim = head_dim
        self.dim = self.size(head_dim, config)

    @staticmethod
    def size(head_dim: int, config) -> int:
        """The feature dimension for ``head_dim``, without building the map (the memory estimate reads it)."""
        return head_dim

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Elu1(FeatureMap):
    """``elu(x) + 1`` (Katharopoulos et al. 2020, arXiv 2006.16236)."""

    def forward(self, x, positions):
        return F.elu(x) + 1.0


class ReLU(FeatureMap):
    """``relu(x)``; a row can have zero mass, which the normaliser's eps absorbs."""

    def forward(self, x, positions):
        return F.relu(x)


class SquaredReLU(FeatureMap):
    """``relu(x)^2`` (as in the Hedgehog/Zoology baselines)."""

    def forward(self, x, positions):
        return F.relu(x).square()


class Taylor2(FeatureMap):
    """Second-order Taylor map of ``exp(q.k / sqrt d)`` (Based, Arora et al. 2024, arXiv 2402.18668).

    ``phi(x) = [1, x / d^(1/4), vec(x x^T) / (sqrt(2) sqrt(d))]`` so that
    ``phi(q).phi(k) = 1 + s + s^2 / 2`` with ``s = q.k / sqrt(d)``, which is
    positive for every ``s``. Feature dimension ``1 + d + d^2``.
    """

    @staticmethod
    def size(head_dim, config):
        return 1 + head_dim + head_dim * head_dim

    def forward(self, x, positions):
        d = self.head_dim
        x = x / d ** 0.25
        outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / math.sqrt(2)  # (B, H, T, d*d)
        return torch.cat([torch.ones_like(x[..., :1]), x, outer], dim=-1)


class CosFormer(FeatureMap):
    """``relu`` with cos re-weighting (Qin et al. 2022, cosFormer, arXiv 2202.08791).

    ``phi(x_i) = [relu(x_i) cos(pi i / 2M), relu(x_i) sin(pi i / 2M)]`` so
    ``phi(q_i).phi(k_j) = relu(q_i).relu(k_j) cos(pi (i - j) / 2M)``. The paper
    takes ``M`` as the sequence length; here ``M = cos_max_len`` is fixed so
    that decoding one token at a time gives the same weights as the full
    forward. Positions must stay below ``M``. Feature dimension ``2 d``.
    """

    @staticmethod
    def size(head_dim, config):
        return 2 * head_dim

    def __init__(self, head_dim, config):
        super().__init__(head_dim, config)
        self.max_len = config.cos_max_len

    def forward(self, x, positions):
        if positions.numel() and int(positions.max()) >= self.max_len:
            raise ValueError(f"cosFormer position {int(positions.max())} >= cos_max_len={self.max_len}")
        angle = (math.pi / 2) * positions.to(x.dtype) / self.max_len  # (T,)
        r = F.relu(x)
        return torch.cat([r * angle.cos().unsqueeze(-1), r * angle.sin().unsqueeze(-1)], dim=-1)


class Performer(FeatureMap):
    """Positive random features, FAVOR+ (Choromanski et al. 2021, arXiv 2009.14794).

    ``phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m)`` with ``x' = x / d^(1/4)`` and
    ``W`` an ``m x d`` matrix of orthogonal Gaussian rows, so that
    ``E[phi(q).phi(k)] = exp(q.k / sqrt d)``. ``m = num_features`` (default
    ``head_dim``); ``W`` is drawn once from ``feature_seed`` and kept fixed.
    No stabiliser is subtracted, so the map is exactly the same function for a
    query alone (decoding) and in a batch.
    """

    @staticmethod
    def size(head_dim, config):
        return config.num_features or head_dim

    def __init__(self, head_dim, config):
        super().__init__(head_dim, config)
        generator = torch.Generator().manual_seed(config.feature_seed)
        blocks, remaining = [], self.dim
        while remaining > 0:
            gaussian = torch.randn(head_dim, head_dim, generator=generator)
            orthogonal, upper = torch.linalg.qr(gaussian)
            orthogonal = orthogonal * upper.diagonal().sign()  # sign fix: Haar-distributed (Mezzadri 2007)
            blocks.append(orthogonal[: min(remaining, head_dim)])
            remaining -= head_dim
        norms = torch.randn(self.dim, head_dim, generator=generator).norm(dim=1, keepdim=True)
        self.register_buffer("projection", torch.cat(blocks) * norms)  # (m, d), rows with chi(d) norms

    def forward(self, x, positions):
        x = x / self.head_dim ** 0.25
        projected = x @ self.projection.to(x.dtype).T  # (B, H, T, m)
        return torch.exp(projected - x.square().sum(-1, keepdim=True) / 2) / math.sqrt(self.dim)


class DPFP(FeatureMap):
    """Deterministic parameter-free projection (Schlag, Irie, Schmidhuber 2021, arXiv 2102.11174).

    ``r = [relu(x), relu(-x)]`` (size ``2d``); for ``j = 1..nu`` the features are
    ``r * roll(r, j)``, concatenated: feature dimension ``2 d nu``.
    """

    @staticmethod
    def size(head_dim, config):
        return 2 * head_dim * config.dpfp_nu

    def __init__(self, head_dim, config):
        super().__init__(head_dim, config)
        self.nu = config.dpfp_nu

    def forward(self, x, positions):
        r = torch.cat([F.relu(x), F.relu(-x)], dim=-1)
        return torch.cat([r * r.roll(shifts=j, dims=-1) for j in range(1, self.nu + 1)], dim=-1)


class Identity(FeatureMap):
    """``phi(x) = x``: signed similarities (used by InLine attention)."""

    def forward(self, x, positions):
        return x


FEATURE_MAPS: dict[str, type[FeatureMap]] = {
    "elu1": Elu1,
    "relu": ReLU,
    "relu2": SquaredReLU,
    "taylor2": Taylor2,
    "cosformer": CosFormer,
    "performer": Performer,
    "dpfp": DPFP,
    "identity": Identity,
}
