"""Fused element-wise attention in Triton: ``o_i = r_i sum_j f(scale q_i . k_j + b_i) v_j``.

Forward: one program per (query block, batch x head) walks the visible key
blocks and accumulates ``f(S) V`` in fp32. Unlike FlashAttention there is
no running maximum and no row sum to carry or rescale: ``f`` is applied
element-wise and the row scale ``r_i`` (``1``, ``1/n_i`` or
``1/sqrt(n_i/2)``) is a constant multiplied once in the epilogue. Backward:
one kernel per key block for dK and dV, one per query block for dQ, each
recomputing the block's scores (nothing of size ``T x T`` is stored), and
no ``rowsum(dO * O)`` term, since no normalisation couples a row's weights.

``ACT``: 0 relu, 1 sigmoid. ``BIAS_MODE``: 0 none, 1 ``-log n_i``, 2 a
constant. ``ROW_MODE``: 0 none, 1 ``1/n_i``, 2 ``1/sqrt(n_i/2)``. Causal
masks are aligned to the end of the keys, as everywhere in this package.
Each kernel takes its blocks and warps from :data:`BLOCKS_16BIT` or
:data:`BLOCKS_FP32` by head dimension (no autotuning: the interpreter cannot
run more than one configuration); inputs are fp32, fp16 or bf16 with fp32
accumulation, at the head dims of ``FUSED_HEAD_DIMS``. What runs is a list of :class:`Launch` objects, which
:mod:`experiments.kernel_compile` compiles for sm_80 and sm_90 without a GPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import triton
import triton.language as tl

from experiments.attention._elementwise import ACTIVATIONS, BIAS_MODES, ROW_MODES, fused_max_head_dim


@triton.jit
def _row_terms(rows, TQ, TK, bias, CAUSAL: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr):
    if CAUSAL:
        counts = (rows + 1 + TK - TQ).to(tl.float32)
    else:
        counts = tl.zeros_like(rows).to(tl.float32) + TK
    counts = tl.maximum(counts, 1.0)
    if BIAS_MODE == 1:
        b = -tl.log(counts)
    elif BIAS_MODE == 2:
        b = tl.zeros_like(counts) + bias
    else:
        b = tl.zeros_like(counts)
    if ROW_MODE == 1:
        r = 1.0 / counts
    elif ROW_MODE == 2:
        r = 1.0 / tl.sqrt(counts * 0.5)
    else:
        r = tl.zeros_like(counts) + 1.0
    return b, r


@triton.jit
def _dot(a, b, F32: tl.constexpr):
    """``a @ b`` accumulated in fp32; fp32 inputs (``F32``) take exact fp32 products, not TF32."""
    if F32:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL: tl.constexpr, ACT: tl.constexpr, F32: tl.constexpr):
    """Scores, weights (masked to 0) and the validity mask of one (query, key) block."""
    s = _dot(q, kt, F32) * scale + b[:, None]
    valid = (rows[:, None] < TQ) & (cols[None, :] < TK)
    if CAUSAL:
        valid = valid & (cols[None, :] <= rows[:, None] + (TK - TQ))
    if ACT == 0:
        p = tl.maximum(s, 0.0)
    else:
        p = tl.sigmoid(s)
    p = tl.where(valid, p, 0.0)
    return s, p, valid


@triton.jit
def _score_grad(s, p, valid, dp, ACT: tl.constexpr):
    """d loss / d scores from d loss / d weights: relu' = [s > 0], sigmoid' = p (1 - p); masked entries 0."""
    if ACT == 0:
        return tl.where(valid & (s > 0), dp, 0.0)
    return tl.where(valid, dp * p * (1.0 - p), 0.0)


@triton.jit
def _tile(ptr, sb, sh, st, sd, bb, hh, idx, dims, T, D):
    """Positions ``idx`` of batch ``bb``, head ``hh`` of a ``(B, H, T, D)`` tensor as an ``(idx, dims)`` tile; 0 past
    ``T`` and ``D``."""
    return tl.load(ptr + bb * sb + hh * sh + idx[:, None] * st + dims[None, :] * sd,
                   mask=(idx[:, None] < T) & (dims[None, :] < D), other=0.0)


@triton.jit
def _tile_t(ptr, sb, sh, st, sd, bb, hh, idx, dims, T, D):
    """The same positions as a ``(dims, idx)`` tile. A helper of its own, not a constexpr branch of
    :func:`_tile`: the compiler types every ``return`` of a function alike, and the two shapes differ unless the
    blocks are square (the interpreter, running plain Python, would not notice)."""
    return tl.load(ptr + bb * sb + hh * sh + idx[None, :] * st + dims[:, None] * sd,
                   mask=(idx[None, :] < T) & (dims[:, None] < D), other=0.0)


@triton.jit
def _keys_end(pid_m, TQ, TK, BM: tl.constexpr, CAUSAL: tl.constexpr):
    """One past the last key a block of queries sees (causal: aligned to the end of the keys)."""
    hi = TK
    if CAUSAL:
        hi = tl.minimum(TK, (pid_m + 1) * BM + TK - TQ)
    return hi


@triton.jit
def _program(H, BLOCK: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    """This program's block number along time, the ``BLOCK`` positions it owns, its batch and head, and the
    head-dimension ranges of keys and values (grid: (time blocks, batch x heads))."""
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1)
    return pid, pid * BLOCK + tl.arange(0, BLOCK), pid_bh // H, pid_bh % H, tl.arange(0, BD), tl.arange(0, BDV)


@triton.jit
def _store(ptr, sb, sh, st, sd, bb, hh, idx, dims, T, D, value):
    """Write ``value``, an ``(idx, dims)`` tile, into a ``(B, H, T, D)`` tensor; nothing past ``T`` and ``D``."""
    tl.store(ptr + bb * sb + hh * sh + idx[:, None] * st + dims[None, :] * sd, value.to(ptr.dtype.element_ty),
             mask=(idx[:, None] < T) & (dims[None, :] < D))


@triton.jit
def _query_block(Q, DO, sqb, sqh, sqt, sqd, sob, soh, sot, sod, bb, hh, rows, dims, vdims, TQ, TK, D, DV, bias,
                 CAUSAL: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr):
    """What the backward kernels need of a block of queries: ``q``, ``dO`` times the row scale, and the bias."""
    q = _tile(Q, sqb, sqh, sqt, sqd, bb, hh, rows, dims, TQ, D)
    do = _tile(DO, sob, soh, sot, sod, bb, hh, rows, vdims, TQ, DV)
    b, r = _row_terms(rows, TQ, TK, bias, CAUSAL, BIAS_MODE, ROW_MODE)
    return q, (do.to(tl.float32) * r[:, None]).to(q.dtype), b


@triton.jit
def _fwd_kernel(Q, K, V, O, sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd, sob, soh, sot, sod,
                H, TQ, TK, D, DV, scale, bias,
                CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
                F32: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    pid_m, rows, bb, hh, dims, vdims = _program(H, BM, BD, BDV)
    q = _tile(Q, sqb, sqh, sqt, sqd, bb, hh, rows, dims, TQ, D)
    b, r = _row_terms(rows, TQ, TK, bias, CAUSAL, BIAS_MODE, ROW_MODE)
    acc = tl.zeros((BM, BDV), dtype=tl.float32)
    for start in range(0, _keys_end(pid_m, TQ, TK, BM, CAUSAL), BN):
        cols = start + tl.arange(0, BN)
        kt = _tile_t(K, skb, skh, skt, skd, bb, hh, cols, dims, TK, D)
        v = _tile(V, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV)
        _, p, _ = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, F32)
        acc += _dot(p.to(v.dtype), v, F32)
    _store(O, sob, soh, sot, sod, bb, hh, rows, vdims, TQ, DV, acc * r[:, None])


@triton.jit
def _dkdv_kernel(Q, K, V, DO, DK, DV_, sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd,
                 sob, soh, sot, sod, H, TQ, TK, D, DV, scale, bias,
                 CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
                 F32: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    """dK and dV of one key block; Q, K, V, DO strides are shared by DK/DV (contiguous like K, V)."""
    pid_n, cols, bb, hh, dims, vdims = _program(H, BN, BD, BDV)
    kt = _tile_t(K, skb, skh, skt, skd, bb, hh, cols, dims, TK, D)
    vt = _tile_t(V, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV)
    dk = tl.zeros((BN, BD), dtype=tl.float32)
    dv = tl.zeros((BN, BDV), dtype=tl.float32)
    lo = 0
    if CAUSAL:
        lo = tl.maximum(pid_n * BN - (TK - TQ), 0) // BM * BM
    for start in range(lo, TQ, BM):
        rows = start + tl.arange(0, BM)
        q, do, b = _query_block(Q, DO, sqb, sqh, sqt, sqd, sob, soh, sot, sod, bb, hh, rows, dims, vdims, TQ, TK, D,
                                DV, bias, CAUSAL, BIAS_MODE, ROW_MODE)
        s, p, valid = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, F32)
        dv += _dot(tl.trans(p.to(q.dtype)), do, F32)
        dp = _dot(do, vt, F32)
        ds = _score_grad(s, p, valid, dp, ACT)
        dk += _dot(tl.trans(ds.to(q.dtype)), q, F32)
    _store(DK, skb, skh, skt, skd, bb, hh, cols, dims, TK, D, dk * scale)
    _store(DV_, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV, dv)


@triton.jit
def _dq_kernel(Q, K, V, DO, DQ, sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd,
               sob, soh, sot, sod, H, TQ, TK, D, DV, scale, bias,
               CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
               F32: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    """dQ of one query block (DQ strided like Q)."""
    pid_m, rows, bb, hh, dims, vdims = _program(H, BM, BD, BDV)
    q, do, b = _query_block(Q, DO, sqb, sqh, sqt, sqd, sob, soh, sot, sod, bb, hh, rows, dims, vdims, TQ, TK, D, DV,
                            bias, CAUSAL, BIAS_MODE, ROW_MODE)
    dq = tl.zeros((BM, BD), dtype=tl.float32)
    for start in range(0, _keys_end(pid_m, TQ, TK, BM, CAUSAL), BN):
        cols = start + tl.arange(0, BN)
        kt = _tile_t(K, skb, skh, skt, skd, bb, hh, cols, dims, TK, D)
        vt = _tile_t(V, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV)
        s, p, valid = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, F32)
        dp = _dot(do, vt, F32)
        ds = _score_grad(s, p, valid, dp, ACT)
        dq += _dot(ds.to(q.dtype), tl.trans(kt), F32)
    _store(DQ, sqb, sqh, sqt, sqd, bb, hh, rows, dims, TQ, D, dq * scale)


def _strides(*tensors: torch.Tensor) -> list[int]:
    return [s for t in tensors for s in t.stride()]


def head_block(dim: int) -> int:
    """The power-of-two block a head dimension is padded to inside the kernels."""
    return max(16, triton.next_power_of_2(dim))


# (kernel, padded head dim) -> (query block, key block, warps), per input width, chosen so that no kernel
# spills registers or runs out of shared memory on sm_80 or sm_90 at any epilogue (the table
# benchmarks/triton_compile.md, rebuilt by `make kernels`). The backward kernels hold two fp32 accumulators
# and several score tiles at once, so they take smaller blocks or more warps as the head dim grows; exact
# fp32 products (FMA, no tensor cores) need smaller blocks still, and at head dim 128 the fp32 dK/dV kernel
# spilled at every block tried (16 x 16 to 64 x 64, 2 to 8 warps), hence FUSED_HEAD_DIMS.
BLOCKS_16BIT = {
    ("fwd", 16): (64, 64, 4), ("fwd", 32): (64, 64, 4), ("fwd", 64): (64, 64, 4), ("fwd", 128): (64, 64, 8),
    ("dkdv", 16): (64, 64, 4), ("dkdv", 32): (64, 64, 4), ("dkdv", 64): (64, 64, 8), ("dkdv", 128): (32, 64, 8),
    ("dq", 16): (64, 64, 4), ("dq", 32): (64, 64, 4), ("dq", 64): (64, 32, 4), ("dq", 128): (32, 64, 8),
}
BLOCKS_FP32 = {
    ("fwd", 16): (64, 64, 4), ("fwd", 32): (32, 64, 8), ("fwd", 64): (64, 32, 8),
    ("dkdv", 16): (32, 32, 8), ("dkdv", 32): (16, 32, 8), ("dkdv", 64): (16, 32, 8),
    ("dq", 16): (64, 32, 4), ("dq", 32): (32, 32, 4), ("dq", 64): (32, 32, 4),
}
NUM_STAGES = 3


@dataclasses.dataclass(frozen=True)
class Launch:
    """One kernel launch: the kernel, its grid, its runtime arguments, constexprs and compile options.

    The autograd function runs these; :mod:`experiments.kernel_compile` compiles exactly these for a GPU
    target on a machine without one, so what is checked is what runs.
    """

    kernel: Any
    grid: tuple[int, int]
    args: tuple
    constexprs: dict
    options: dict

    def __call__(self) -> None:
        self.kernel[self.grid](*self.args, **self.constexprs, **self.options)


def _modes(q, k, v, *, causal, act, bias_mode, row_mode, kernel) -> tuple[dict, dict]:
    d, dv = q.shape[-1], v.shape[-1]
    blocks = BLOCKS_FP32 if q.dtype == torch.float32 else BLOCKS_16BIT
    bm, bn, warps = blocks[(kernel, head_block(max(d, dv)))]
    meta = dict(CAUSAL=causal, ACT=act, BIAS_MODE=bias_mode, ROW_MODE=row_mode, F32=q.dtype == torch.float32,
                BM=bm, BN=bn, BD=head_block(d), BDV=head_block(dv))
    return meta, dict(num_warps=warps, num_stages=NUM_STAGES)


def forward_launch(q, k, v, out, *, causal: bool, scale: float, act: int, bias_mode: int, bias: float,
                   row_mode: int) -> Launch:
    """The forward kernel writing ``out`` from contiguous ``q, k, v`` (``(B, H, T, D)``)."""
    batch, heads, tq, d = q.shape
    tk, dv = k.shape[2], v.shape[3]
    meta, options = _modes(q, k, v, causal=causal, act=act, bias_mode=bias_mode, row_mode=row_mode, kernel="fwd")
    grid = (triton.cdiv(tq, meta["BM"]), batch * heads)
    args = (q, k, v, out, *_strides(q, k, v, out), heads, tq, tk, d, dv, scale, bias)
    return Launch(_fwd_kernel, grid, args, meta, options)


def backward_launches(q, k, v, grad_out, dq, dk, dv_, *, causal: bool, scale: float, act: int, bias_mode: int,
                      bias: float, row_mode: int) -> tuple[Launch, Launch]:
    """The dK/dV and dQ kernels writing ``dk, dv_`` and ``dq`` (strided like k, v and q)."""
    batch, heads, tq, d = q.shape
    tk, dv = k.shape[2], v.shape[3]
    strides = _strides(q, k, v, grad_out)
    sizes = (heads, tq, tk, d, dv, scale, bias)
    modes = dict(causal=causal, act=act, bias_mode=bias_mode, row_mode=row_mode)
    meta, options = _modes(q, k, v, **modes, kernel="dkdv")
    dkdv = Launch(_dkdv_kernel, (triton.cdiv(tk, meta["BN"]), batch * heads),
                  (q, k, v, grad_out, dk, dv_, *strides, *sizes), meta, options)
    meta, options = _modes(q, k, v, **modes, kernel="dq")
    dq_ = Launch(_dq_kernel, (triton.cdiv(tq, meta["BM"]), batch * heads),
                 (q, k, v, grad_out, dq, *strides, *sizes), meta, options)
    return dkdv, dq_


class _Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, act, bias_mode, bias, row_mode):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        modes = dict(causal=causal, scale=scale, act=act, bias_mode=bias_mode, bias=bias, row_mode=row_mode)
        forward_launch(q, k, v, out, **modes)()
        ctx.save_for_backward(q, k, v)
        ctx.modes = modes
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for launch in backward_launches(q, k, v, grad_out.contiguous(), dq, dk, dv, **ctx.modes):
            launch()
        return dq, dk, dv, None, None, None, None, None, None


def fused_attention(q, k, v, *, causal: bool, scale: float, activation: str = "relu", bias_mode: str = "none",
                    bias: float = 0.0, row_mode: str = "none") -> torch.Tensor:
    """The Triton form of :func:`experiments.attention._elementwise.elementwise_attention`."""
    limit = fused_max_head_dim(q.dtype)
    if max(q.shape[-1], v.shape[-1]) > limit:
        raise ValueError(f"the fused kernel takes {q.dtype} head dims up to {limit}, got q {q.shape[-1]} and v "
                         f"{v.shape[-1]}; use form='blockwise' or 'materialised' (auto does)")
    return _Fused.apply(q, k, v, causal, float(scale), ACTIVATIONS.index(activation), BIAS_MODES.index(bias_mode),
                        float(bias), ROW_MODES.index(row_mode))
