"""Scalable-Softmax, SSMax (Nakanishi 2025, arXiv 2501.19399).

Softmax's largest weight tends to 0 as the number of keys ``n`` grows, even
when one logit leads the rest by a fixed margin ("attention fading"). SSMax
multiplies a query's logits by ``s log n_i`` before the softmax,

    w_ij = n_i^(s z_ij) / sum_l n_i^(s z_il),     z = q . k / sqrt(d),

with ``n_i`` the number of keys query ``i`` sees (``i + 1`` under a causal
mask, so decoding one token at a time gives the full forward's rows) and
``s`` a learnt scalar per head. A key leading by ``delta`` keeps a weight
bounded away from 0 as ``n`` grows when ``s delta >= 1`` (``theory/fading.py``).
``s`` starts at ``s_init`` (0.43 is the value of the paper's Figure 1).

The fast path folds ``s log n_i`` into the queries and calls softmax's SDPA
path; :func:`reference` scales the logits matrix, as the formula reads.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from experiments.attention import register
from experiments.attention.base import (AttentionModule, Variant, causal_mask, check_qkv, default_scale, scores,
                                        visible_counts)
from experiments.attention.softmax import attend as softmax_attend
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class SSMaxConfig:
    s_init: float = param(0.43, "initial s of every head (logits times s log n)")
    learn_s: bool = param(True, "learn s per head (False: keep s_init)")
    scale: float | None = param(None, "logit scale before s log n; None means 1/sqrt(head_dim)")

    def __post_init__(self):
        require(self.s_init > 0, f"s_init must be positive, got {self.s_init}")
        require(self.scale is None or self.scale > 0, f"scale must be positive, got {self.scale}")


def length_factor(q: torch.Tensor, k: torch.Tensor, s, *, causal: bool) -> torch.Tensor:
    """``s log n_i``: ``(H, Tq, 1)`` for ``s`` of shape ``(H,)``, ``(1, Tq, 1)`` for a number."""
    log_n = visible_counts(q.shape[-2], k.shape[-2], causal=causal, device=q.device, dtype=q.dtype).log()  # (Tq, 1)
    s = torch.as_tensor(s, device=q.device, dtype=q.dtype).reshape(-1, 1, 1)  # (H or 1, 1, 1)
    return s * log_n


def weights(q, k, *, causal: bool, s=0.43, scale: float | None = None):
    z = scores(q, k, causal=False, scale=scale) * length_factor(q, k, s, causal=causal)  # (B, H, Tq, Tk)
    if causal:  # masked after the product: log n is 0 for a query that sees one key, and 0 * -inf is nan
        z = z.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    return z.softmax(dim=-1)


def reference(q, k, v, *, causal: bool, s=0.43, scale: float | None = None):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, s=s, scale=scale) @ v


def attend(q, k, v, *, causal: bool, s=0.43, scale: float | None = None):
    """``(s log n_i) q_i`` through softmax's SDPA path: the row factor is a per-query scale."""
    check_qkv(q, k, v)
    return softmax_attend(q * length_factor(q, k, s, causal=causal), k, v, causal=causal,
                          scale=default_scale(q, scale))


class SSMaxAttention(AttentionModule):
    def __init__(self, config, *, d_model, num_heads):
        super().__init__(config, d_model=d_model, num_heads=num_heads)
        s = torch.full((num_heads,), float(config.s_init))
        self.s = nn.Parameter(s) if config.learn_s else nn.Buffer(s)

    def mix(self, q, k, v, *, causal):
        return attend(q, k, v, causal=causal, s=self.s, scale=self.config.scale)

    def head_weights(self, q, k, *, causal):
        return weights(q, k, causal=causal, s=self.s, scale=self.config.scale)


register(Variant(name="ssmax", config=SSMaxConfig, module=SSMaxAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="Scalable-Softmax: logits times s log n (s learnt per head), then softmax"))
