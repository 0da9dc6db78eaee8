"""Attention with an element-wise weight function and no row normalisation.

The ReLU family and sigmoid attention share one sum::

    o_i = r_i * sum_{j visible to i} f(scale * q_i . k_j + b_i) v_j

with ``f`` = relu or sigmoid, a per-row bias ``b_i`` (sigmoid's ``-log n_i``,
or a constant) and a per-row scale ``r_i`` (1, ``1 / n_i``, or
``1 / sqrt(n_i / 2)``), ``n_i`` the number of keys row ``i`` sees. No row
needs a maximum or a sum over its keys, so the sum splits over key blocks
with no rescaling at all. Three forms compute it:

- ``materialised``: the ``(Tq, Tk)`` weight matrix, then one product (fast
  for short sequences; memory quadratic in length).
- ``blockwise``: query and key blocks in a loop, with a custom backward
  that recomputes each block's weights, so neither pass holds a ``Tq x Tk``
  matrix (memory linear in length).
- ``fused``: one Triton kernel forward and two backward (dK/dV, dQ), with
  the bias and row scale as in-kernel epilogue options
  (:mod:`experiments.attention._elementwise_triton`). Runs on CUDA, or on
  CPU tensors under ``TRITON_INTERPRET=1`` (fp32 only).

``auto`` picks ``fused`` on CUDA when Triton is installed and the kernel
takes the head dim at the inputs' dtype (:data:`FUSED_HEAD_DIMS`), otherwise ``materialised`` up to
:data:`MATERIALISE_MAX` weights per head and ``blockwise`` above.
"""

from __future__ import annotations

import dataclasses
import math
import os

import torch

from experiments.attention.base import causal_mask, check_qkv, visible_counts
from experiments.attention.base import scores as base_scores
from experiments.config import check_choices, param, require

FORMS = ("auto", "materialised", "blockwise", "fused")
ACTIVATIONS = ("relu", "sigmoid")
BIAS_MODES = ("none", "log_n", "constant")  # b_i = 0, -log n_i, or a given constant
ROW_MODES = ("none", "count", "sqrt_half_count")  # r_i = 1, 1 / n_i, 1 / sqrt(n_i / 2)
MATERIALISE_MAX = 1 << 20  # auto: materialise up to this many weights per head (1024 x 1024)
# the fused kernel's largest head dim per input dtype: where its block tables have a configuration that
# does not spill (see _elementwise_triton.BLOCKS_16BIT / BLOCKS_FP32)
FUSED_HEAD_DIMS = {torch.float16: 128, torch.bfloat16: 128, torch.float32: 64}


@dataclasses.dataclass(frozen=True)
class ElementwiseForm:
    """The form fields every element-wise variant's config carries."""

    form: str = param("auto", "materialised (T x T matrix), blockwise (O(T) memory, recomputing backward), "
                      "fused (Triton kernel), or auto", choices=FORMS)
    block_size: int = param(256, "query and key block of the blockwise form")

    def __post_init__(self):
        check_choices(self)
        require(self.block_size >= 1, f"block_size must be positive, got {self.block_size}")

    def check_run(self, *, positions: int, device: torch.device, head_dim: int | None = None) -> None:
        """Refuse, before training, a form this device cannot run (the fused kernel needs Triton and CUDA, and
        a head dim it has blocks for)."""
        require(self.form != "fused" or fused_available(device),
                f"model.attention.form=fused needs Triton and a CUDA device; this run trains on {device.type}: "
                "use auto, materialised or blockwise")
        limit = fused_max_head_dim(torch.bfloat16)  # what training on CUDA autocasts to
        require(self.form != "fused" or head_dim is None or head_dim <= limit,
                f"model.attention.form=fused takes head dims up to {limit}, this model's is {head_dim}: "
                "use auto, materialised or blockwise, or more heads")

    def holds_matrix(self, *, device: str, queries: int, keys: int, head_dim: int) -> bool:
        """Only the materialised form keeps a ``(Tq, Tk)`` matrix per head."""
        return planned_form(self.form, torch.device(device), queries, keys, head_dim) == "materialised"


def _row_terms(tq: int, tk: int, *, causal: bool, bias_mode: str, bias: float, row_mode: str, device, dtype):
    """``(b, r)`` as ``(tq, 1)`` tensors (or None where they are 0 and 1)."""
    counts = visible_counts(tq, tk, causal=causal, device=device, dtype=dtype)
    b = {"none": None, "log_n": -torch.log(counts), "constant": torch.full_like(counts, bias)}[bias_mode]
    r = {"none": None, "count": 1.0 / counts, "sqrt_half_count": torch.rsqrt(counts / 2)}[row_mode]
    return b, r


def _check_modes(activation: str, bias_mode: str, row_mode: str, form: str) -> None:
    for name, value, valid in (("activation", activation, ACTIVATIONS), ("bias_mode", bias_mode, BIAS_MODES),
                               ("row_mode", row_mode, ROW_MODES), ("form", form, FORMS)):
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; valid values are {list(valid)}")


def _activate(scores: torch.Tensor, activation: str) -> torch.Tensor:
    return torch.relu(scores) if activation == "relu" else torch.sigmoid(scores)


def materialised_weights(q, k, *, causal: bool, scale: float, activation: str = "relu", bias_mode: str = "none",
                         bias: float = 0.0, row_mode: str = "none") -> torch.Tensor:
    """The ``(B, H, Tq, Tk)`` matrix ``r_i f(scale q_i . k_j + b_i)``, masked entries multiplied to 0."""
    _check_modes(activation, bias_mode, row_mode, "materialised")
    tq, tk = q.shape[-2], k.shape[-2]
    b, r = _row_terms(tq, tk, causal=causal, bias_mode=bias_mode, bias=bias, row_mode=row_mode,
                      device=q.device, dtype=q.dtype)
    scores = base_scores(q * scale, k, causal=False, scale=1.0)  # (B, H, Tq, Tk); masked below, per activation
    if b is not None:
        scores = scores + b
    if activation == "relu" and causal:  # masked scores to 0 before the ReLU, as ReLA's code does
        scores = scores * causal_mask(tq, tk, q.device)
    out = _activate(scores, activation)
    if activation == "sigmoid" and causal:
        out = out * causal_mask(tq, tk, q.device)
    return out if r is None else out * r


def _block_weights(q_blk, k_blk, rows, cols, shift, *, causal, scale, activation, b_blk):
    """One block's weights (before the row scale) and its validity mask."""
    scores = (q_blk * scale) @ k_blk.transpose(-2, -1)
    if b_blk is not None:
        scores = scores + b_blk
    valid = None
    if causal:
        valid = cols.unsqueeze(0) <= rows.unsqueeze(1) + shift
    weights = _activate(scores, activation)
    if valid is not None:
        weights = weights * valid
    return scores, weights, valid


def _key_limit(q_end: int, shift: int, tk: int, causal: bool) -> int:
    """One past the last key the queries before ``q_end`` may see."""
    return min(tk, q_end + shift) if causal else tk


class _Blockwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, activation, b, r, block):
        tq, tk = q.shape[-2], k.shape[-2]
        shift = tk - tq
        out = q.new_zeros(*q.shape[:-1], v.shape[-1])
        for q0 in range(0, tq, block):
            q1 = min(tq, q0 + block)
            rows = torch.arange(q0, q1, device=q.device)
            b_blk = None if b is None else b[q0:q1]
            acc = out[..., q0:q1, :]
            for k0 in range(0, _key_limit(q1, shift, tk, causal), block):
                k1 = min(tk, k0 + block)
                cols = torch.arange(k0, k1, device=q.device)
                _, weights, _ = _block_weights(q[..., q0:q1, :], k[..., k0:k1, :], rows, cols, shift, causal=causal,
                                               scale=scale, activation=activation, b_blk=b_blk)
                acc += weights @ v[..., k0:k1, :]
            if r is not None:
                acc *= r[q0:q1]
        ctx.save_for_backward(q, k, v, b, r)
        ctx.config = (causal, scale, activation, block)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, b, r = ctx.saved_tensors
        causal, scale, activation, block = ctx.config
        tq, tk = q.shape[-2], k.shape[-2]
        shift = tk - tq
        grad_out = grad_out if r is None else grad_out * r
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for q0 in range(0, tq, block):
            q1 = min(tq, q0 + block)
            rows = torch.arange(q0, q1, device=q.device)
            b_blk = None if b is None else b[q0:q1]
            q_blk, g_blk = q[..., q0:q1, :], grad_out[..., q0:q1, :]
            for k0 in range(0, _key_limit(q1, shift, tk, causal), block):
                k1 = min(tk, k0 + block)
                cols = torch.arange(k0, k1, device=q.device)
                k_blk, v_blk = k[..., k0:k1, :], v[..., k0:k1, :]
                scores, weights, valid = _block_weights(q_blk, k_blk, rows, cols, shift, causal=causal, scale=scale,
                                                        activation=activation, b_blk=b_blk)
                dv[..., k0:k1, :] += weights.transpose(-2, -1) @ g_blk
                d_weights = g_blk @ v_blk.transpose(-2, -1)
                if activation == "relu":
                    d_scores = d_weights * (scores > 0)
                else:
                    sig = torch.sigmoid(scores)
                    d_scores = d_weights * sig * (1 - sig)
                if valid is not None:
                    d_scores = d_scores * valid
                dq[..., q0:q1, :] += (d_scores @ k_blk) * scale
                dk[..., k0:k1, :] += (d_scores.transpose(-2, -1) @ q_blk) * scale
        return dq, dk, dv, None, None, None, None, None, None


def fused_available(device: torch.device) -> bool:
    """Whether the Triton kernel can run on ``device`` (CUDA, or any device in the interpreter)."""
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def fused_max_head_dim(dtype: torch.dtype) -> int:
    """The largest head dim the fused kernel takes at ``dtype`` (0: a dtype it does not take)."""
    return FUSED_HEAD_DIMS.get(dtype, 0)


def planned_form(form: str, device: torch.device, queries: int, keys: int, head_dim: int,
                 dtype: torch.dtype = torch.bfloat16) -> str:
    """The form ``form`` runs as: ``auto`` is fused on CUDA (Triton installed, a head dim the kernel takes at
    ``dtype``; training on CUDA autocasts to bf16), otherwise materialised up to :data:`MATERIALISE_MAX` weights
    per head, blockwise above."""
    if form != "auto":
        return form
    if device.type == "cuda" and head_dim <= fused_max_head_dim(dtype) and fused_available(device):
        return "fused"
    return "materialised" if queries * keys <= MATERIALISE_MAX else "blockwise"


def resolve_form(form: str, q: torch.Tensor, tk: int, dv: int | None = None) -> str:
    """:func:`planned_form` for queries ``q`` against ``tk`` keys (values of width ``dv``, default q's)."""
    return planned_form(form, q.device, q.shape[-2], tk, max(q.shape[-1], dv or 0), q.dtype)


def elementwise_attention(q, k, v, *, causal: bool, scale: float | None = None, activation: str = "relu",
                          bias_mode: str = "none", bias: float = 0.0, row_mode: str = "none", form: str = "auto",
                          block_size: int = 256) -> torch.Tensor:
    """``o_i = r_i sum_j f(scale q_i . k_j + b_i) v_j`` over visible keys, in the chosen form."""
    check_qkv(q, k, v)
    _check_modes(activation, bias_mode, row_mode, form)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    tq, tk = q.shape[-2], k.shape[-2]
    if causal and tq > tk:
        raise ValueError(f"causal attention needs at most as many queries ({tq}) as keys ({tk})")
    form = resolve_form(form, q, tk, v.shape[-1])
    if form == "materialised":
        return materialised_weights(q, k, causal=causal, scale=scale, activation=activation, bias_mode=bias_mode,
                                    bias=bias, row_mode=row_mode) @ v
    if form == "blockwise":
        b, r = _row_terms(tq, tk, causal=causal, bias_mode=bias_mode, bias=bias, row_mode=row_mode,
                          device=q.device, dtype=q.dtype)
        return _Blockwise.apply(q, k, v, causal, scale, activation, b, r, block_size)
    if not fused_available(q.device):
        raise ValueError(f"form='fused' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1), got a "
                         f"{q.device.type} tensor; valid forms here are ['auto', 'materialised', 'blockwise']")
    from experiments.attention._elementwise_triton import fused_attention

    return fused_attention(q, k, v, causal=causal, scale=scale, activation=activation, bias_mode=bias_mode,
                           bias=bias, row_mode=row_mode)
