"""Softmax attention (Vaswani et al. 2017, arXiv 1706.03762).

``softmax(Q K^T * scale) V`` with ``scale = 1/sqrt(head_dim)`` by default.
The fast path is PyTorch's ``scaled_dot_product_attention`` (FlashAttention
or memory-efficient kernels where available); :func:`reference` forms the
matrix explicitly and is what the tests compare against.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from experiments.attention import register
from experiments.attention.base import AttentionModule, ScaleConfig, Variant, causal_mask, check_qkv, scores


@dataclasses.dataclass(frozen=True)
class SoftmaxConfig(ScaleConfig):
    def holds_matrix(self, *, device: str, queries: int, keys: int, head_dim: int) -> bool:
        """PyTorch's SDPA (flash or memory-efficient kernels, on CUDA and CPU) keeps no ``(Tq, Tk)`` matrix."""
        return False


def weights(q: torch.Tensor, k: torch.Tensor, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    return scores(q, k, causal=causal, scale=scale).softmax(dim=-1)  # (B, H, Tq, Tk)


def reference(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    check_qkv(q, k, v)
    tq, tk = q.shape[-2], k.shape[-2]
    if causal and tq != tk:
        # SDPA's is_causal aligns the mask top-left; ours is aligned to the end.
        mask = causal_mask(tq, tk, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


class SoftmaxAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="softmax", config=SoftmaxConfig, module=SoftmaxAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="softmax(QK^T/sqrt d) V through PyTorch SDPA"))
