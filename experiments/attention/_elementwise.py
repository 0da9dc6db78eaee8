"""Attention with an element-wise weight function and no row normalisation.

The ReLU family and sigmoid attention share one sum::

    o_i = r_i * sum_{j visible to i} f(scale * q_i . k_j + b_i) v_j

with ``f`` = relu or sigmoid, a per-row bias ``b_i`` (sigmoid's ``-log n_i``,
or a constant) and a per-row scale ``r_i`` (1, ``1 / n_i``, or
``1 / sqrt(n_i / 2)``), ``n_i`` the number of keys row ``i`` sees. No row
needs a maximum or a sum over its keys, so the sum splits over key blocks
with no rescaling at all. Three forms compute it:

- ``materialised``: the ``(Tq, Tk)`` weight matrix, then one product (fast
  for short sequences; memory quadratic in length). The readable one.
- ``blockwise``: query and key blocks in a loop, with a custom backward
  that recomputes each block's weights, so neither pass holds a ``Tq x Tk``
  matrix (memory linear in length). Each output and gradient tile is summed
  in a local accumulator and written once, dQ per query block and dK, dV
  per key block, as the fused backward does.
- ``fused``: one Triton kernel forward and two backward (dK/dV, dQ), with
  the bias and row scale as in-kernel epilogue options
  (:mod:`experiments.attention._elementwise_triton`, imported only to run
  it). Runs on CUDA, or on CPU tensors under ``TRITON_INTERPRET=1`` (fp32
  only).

This module holds the first two and the choice between forms; what the
kernels take (modes, blocks, head dims) is :mod:`experiments.attention._elementwise_spec`.
``auto`` picks ``fused`` on CUDA when Triton is installed and the kernels
take the head dim at the inputs' dtype (:func:`~experiments.attention._elementwise_spec.max_head_dim`),
otherwise ``materialised`` up to :data:`MATERIALISE_MAX` weights per head and
``blockwise`` above.
"""

from __future__ import annotations

import dataclasses
import math
import os

import torch

from experiments.attention import _elementwise_spec as spec
from experiments.attention.base import causal_mask, check_qkv, visible_counts
from experiments.attention.base import scores as base_scores
from experiments.config import check_choices, param, require

FORMS = ("auto", "materialised", "blockwise", "fused")
MATERIALISE_MAX = 1 << 20  # auto: materialise up to this many weights per head (1024 x 1024)


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
        limit = spec.max_head_dim(torch.bfloat16)  # what training on CUDA autocasts to
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
    for name, value, valid in (("activation", activation, spec.ACTIVATIONS),
                               ("bias_mode", bias_mode, spec.BIAS_MODES),
                               ("row_mode", row_mode, spec.ROW_MODES), ("form", form, FORMS)):
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


def _empty(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised buffer for a blockwise output or gradient. Every tile of it is written exactly once, from
    a local accumulator; the tests replace this function with a NaN fill, so a tile left unwritten shows."""
    return like.new_empty(shape)


def _spans(length: int, block: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each block of ``block`` positions, the last one shorter if ``block`` does not divide."""
    return [(start, min(length, start + block)) for start in range(0, length, block)]


@dataclasses.dataclass(frozen=True, eq=False)
class _Blocks:
    """One blockwise call: its inputs and options, and the weights of one (query block, key block) pair."""

    q: torch.Tensor  # (B, H, Tq, D)
    k: torch.Tensor  # (B, H, Tk, D)
    v: torch.Tensor  # (B, H, Tk, Dv)
    b: torch.Tensor | None  # (Tq, 1) bias, None for 0
    causal: bool
    scale: float
    activation: str
    block: int

    def sees(self, q_end: int, k_start: int) -> bool:
        """Whether the query block ending at ``q_end`` sees any of the key block starting at ``k_start``."""
        tq, tk = self.q.shape[-2], self.k.shape[-2]
        return k_start < _key_limit(q_end, tk - tq, tk, self.causal)

    def key_spans(self, q_end: int) -> list[tuple[int, int]]:
        """The key blocks that the query block ending at ``q_end`` sees."""
        return [(k0, k1) for k0, k1 in _spans(self.k.shape[-2], self.block) if self.sees(q_end, k0)]

    def weights(self, q_span: tuple[int, int], k_span: tuple[int, int]):
        """Scores, weights and validity mask of a pair, as :func:`_block_weights`."""
        (q0, q1), (k0, k1) = q_span, k_span
        rows = torch.arange(q0, q1, device=self.q.device)
        cols = torch.arange(k0, k1, device=self.q.device)
        b_blk = None if self.b is None else self.b[q0:q1]
        shift = self.k.shape[-2] - self.q.shape[-2]
        return _block_weights(self.q[..., q0:q1, :], self.k[..., k0:k1, :], rows, cols, shift, causal=self.causal,
                              scale=self.scale, activation=self.activation, b_blk=b_blk)

    def score_grad(self, grad_out: torch.Tensor, q_span: tuple[int, int], k_span: tuple[int, int]):
        """The pair's weights and d loss / d scores, given ``grad_out`` times the row scale."""
        (q0, q1), (k0, k1) = q_span, k_span
        scores, weights, valid = self.weights(q_span, k_span)
        d_weights = grad_out[..., q0:q1, :] @ self.v[..., k0:k1, :].transpose(-2, -1)  # (B, H, bq, bk)
        if self.activation == "relu":
            d_scores = d_weights * (scores > 0)
        else:
            sig = torch.sigmoid(scores)
            d_scores = d_weights * sig * (1 - sig)
        if valid is not None:
            d_scores = d_scores * valid
        return weights, d_scores


def _blockwise_out(blocks: _Blocks, r: torch.Tensor | None) -> torch.Tensor:
    """``o``, one query block at a time over the key blocks it sees."""
    q, v = blocks.q, blocks.v
    out = _empty((*q.shape[:-1], v.shape[-1]), q)  # (B, H, Tq, Dv)
    for q0, q1 in _spans(q.shape[-2], blocks.block):
        acc = q.new_zeros(*q.shape[:-2], q1 - q0, v.shape[-1])  # (B, H, bq, Dv)
        for k0, k1 in blocks.key_spans(q1):
            _, weights, _ = blocks.weights((q0, q1), (k0, k1))
            acc += weights @ v[..., k0:k1, :]
        out[..., q0:q1, :] = acc if r is None else acc * r[q0:q1]
    return out


def _blockwise_dq(blocks: _Blocks, grad_out: torch.Tensor) -> torch.Tensor:
    """dQ, one query block at a time over the key blocks it sees (as the fused dQ kernel)."""
    q, k = blocks.q, blocks.k
    dq = _empty(q.shape, q)
    for q0, q1 in _spans(q.shape[-2], blocks.block):
        acc = q.new_zeros(*q.shape[:-2], q1 - q0, q.shape[-1])  # (B, H, bq, D)
        for k0, k1 in blocks.key_spans(q1):
            _, d_scores = blocks.score_grad(grad_out, (q0, q1), (k0, k1))
            acc += (d_scores @ k[..., k0:k1, :]) * blocks.scale
        dq[..., q0:q1, :] = acc
    return dq


def _blockwise_dkdv(blocks: _Blocks, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dK and dV, one key block at a time over the query blocks that see it (as the fused dK/dV kernel)."""
    q, k, v = blocks.q, blocks.k, blocks.v
    dk, dv = _empty(k.shape, k), _empty(v.shape, v)
    for k0, k1 in _spans(k.shape[-2], blocks.block):
        dk_acc = k.new_zeros(*k.shape[:-2], k1 - k0, k.shape[-1])  # (B, H, bk, D)
        dv_acc = v.new_zeros(*v.shape[:-2], k1 - k0, v.shape[-1])  # (B, H, bk, Dv)
        for q0, q1 in _spans(q.shape[-2], blocks.block):
            if not blocks.sees(q1, k0):  # causal: these queries come before every key of the block
                continue
            weights, d_scores = blocks.score_grad(grad_out, (q0, q1), (k0, k1))
            dv_acc += weights.transpose(-2, -1) @ grad_out[..., q0:q1, :]
            dk_acc += (d_scores.transpose(-2, -1) @ q[..., q0:q1, :]) * blocks.scale
        dk[..., k0:k1, :] = dk_acc
        dv[..., k0:k1, :] = dv_acc
    return dk, dv


class _Blockwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, activation, b, r, block):
        out = _blockwise_out(_Blocks(q, k, v, b, causal, scale, activation, block), r)
        ctx.save_for_backward(q, k, v, b, r)
        ctx.config = (causal, scale, activation, block)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, b, r = ctx.saved_tensors
        blocks = _Blocks(q, k, v, b, *ctx.config)
        grad_out = grad_out if r is None else grad_out * r
        return (_blockwise_dq(blocks, grad_out), *_blockwise_dkdv(blocks, grad_out),
                None, None, None, None, None, None)


def fused_available(device: torch.device) -> bool:
    """Whether the Triton kernel can run on ``device`` (CUDA, or any device in the interpreter)."""
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def planned_form(form: str, device: torch.device, queries: int, keys: int, head_dim: int,
                 dtype: torch.dtype = torch.bfloat16) -> str:
    """The form ``form`` runs as: ``auto`` is fused on CUDA (Triton installed, a head dim the kernel takes at
    ``dtype``; training on CUDA autocasts to bf16), otherwise materialised up to :data:`MATERIALISE_MAX` weights
    per head, blockwise above."""
    if form != "auto":
        return form
    if device.type == "cuda" and head_dim <= spec.max_head_dim(dtype) and fused_available(device):
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
