"""1.5-entmax attention (Peters, Niculae, Martins 2019, arXiv 1905.05702).

1.5-entmax interpolates between softmax (alpha=1) and sparsemax (alpha=2):
rows sum to 1 and may be sparse (a baseline of ReLA, PAPERS.md R3-R7).
The fast path is the ``entmax`` package; :func:`reference` is the
sort-based closed form written out row by row (``_sparse.entmax15_row``).
"""

from __future__ import annotations

import dataclasses

import entmax

from experiments.attention import register
from experiments.attention.base import AttentionModule, Variant, check_qkv
from experiments.attention._sparse import entmax15_row, masked_scores, rowwise
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class Entmax15Config:
    scale: float | None = param(None, "logit scale; None means 1/sqrt(head_dim)")

    def __post_init__(self):
        require(self.scale is None or self.scale > 0, f"scale must be positive, got {self.scale}")


def weights(q, k, *, causal: bool, scale: float | None = None):
    return entmax.entmax15(masked_scores(q, k, causal=causal, scale=scale), dim=-1)


def reference(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return rowwise(entmax15_row, masked_scores(q, k, causal=causal, scale=scale)) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale) @ v


class Entmax15Attention(AttentionModule):
    def mix(self, q, k, v, *, causal):
        return attend(q, k, v, causal=causal, scale=self.config.scale)

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, scale=self.config.scale)


register(Variant(
    name="entmax15",
    config=Entmax15Config,
    module=Entmax15Attention,
    attend=attend,
    reference=reference,
    weights=weights,
    summary="1.5-entmax attention (sparse rows that sum to 1)",
))
