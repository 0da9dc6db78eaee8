"""ReLU attention divided by the number of keys (Wortsman et al. 2023, arXiv 2309.08586).

``w_ij = relu(q_i . k_j / sqrt d) / n_i`` with ``n_i`` the number of keys query
``i`` sees (``i + 1`` under a causal mask). With ``s ~ N(0, sigma_s^2)`` and
unit values the output variance is ``sigma_s^2 / (2 n)`` (docs/claims.md, scaling
rules), so it shrinks with length instead of growing like plain ReLU's.
"""

from __future__ import annotations

import dataclasses

from experiments.attention import register
from experiments.attention.base import AttentionModule, Variant, check_qkv, visible_counts
from experiments.attention._elementwise import elementwise_attention
from experiments.attention.relu import ReLUConfig, relu_scores


@dataclasses.dataclass(frozen=True)
class ReLULenConfig(ReLUConfig):
    pass


def weights(q, k, *, causal: bool, scale: float | None = None):
    counts = visible_counts(q.shape[-2], k.shape[-2], causal=causal, device=q.device, dtype=q.dtype)  # (Tq, 1)
    return relu_scores(q, k, causal=causal, scale=scale) / counts


def reference(q, k, v, *, causal: bool, scale: float | None = None):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, scale=scale) @ v


def attend(q, k, v, *, causal: bool, scale: float | None = None, form: str = "auto", block_size: int = 256):
    """``1/n_i`` as the row-scale epilogue of the element-wise forms."""
    return elementwise_attention(q, k, v, causal=causal, scale=scale, row_mode="count", form=form,
                                 block_size=block_size)


class ReLULenAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="relu_len", config=ReLULenConfig, module=ReLULenAttention,
                 attend=attend, reference=reference, weights=weights,
                 summary="ReLU attention divided by the number of visible keys (Wortsman et al.)"))
