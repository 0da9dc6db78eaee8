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
One block configuration is used (the interpreter cannot autotune over
several); inputs are fp32, fp16 or bf16 with fp32 accumulation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from experiments.attention._elementwise import ACTIVATIONS, BIAS_MODES, ROW_MODES

BLOCK_M = 64
BLOCK_N = 64


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
def _dot(a, b, IEEE: tl.constexpr):
    """``a @ b`` accumulated in fp32; exact fp32 products (no TF32) when ``IEEE``."""
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL: tl.constexpr, ACT: tl.constexpr, IEEE: tl.constexpr):
    """Scores, weights (masked to 0) and the validity mask of one (query, key) block."""
    s = _dot(q, kt, IEEE) * scale + b[:, None]
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
def _tile(ptr, sb, sh, st, sd, bb, hh, idx, dims, T, D, TRANSPOSED: tl.constexpr):
    """Positions ``idx`` of batch ``bb``, head ``hh`` of a ``(B, H, T, D)`` tensor: an ``(idx, dims)`` tile, or
    ``(dims, idx)`` when ``TRANSPOSED``; 0 past ``T`` and ``D``."""
    if TRANSPOSED:
        return tl.load(ptr + bb * sb + hh * sh + idx[None, :] * st + dims[:, None] * sd,
                       mask=(idx[None, :] < T) & (dims[:, None] < D), other=0.0)
    return tl.load(ptr + bb * sb + hh * sh + idx[:, None] * st + dims[None, :] * sd,
                   mask=(idx[:, None] < T) & (dims[None, :] < D), other=0.0)


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
    q = _tile(Q, sqb, sqh, sqt, sqd, bb, hh, rows, dims, TQ, D, False)
    do = _tile(DO, sob, soh, sot, sod, bb, hh, rows, vdims, TQ, DV, False)
    b, r = _row_terms(rows, TQ, TK, bias, CAUSAL, BIAS_MODE, ROW_MODE)
    return q, (do.to(tl.float32) * r[:, None]).to(q.dtype), b


@triton.jit
def _fwd_kernel(Q, K, V, O, sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd, sob, soh, sot, sod,
                H, TQ, TK, D, DV, scale, bias,
                CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
                IEEE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    pid_m, rows, bb, hh, dims, vdims = _program(H, BM, BD, BDV)
    q = _tile(Q, sqb, sqh, sqt, sqd, bb, hh, rows, dims, TQ, D, False)
    b, r = _row_terms(rows, TQ, TK, bias, CAUSAL, BIAS_MODE, ROW_MODE)
    acc = tl.zeros((BM, BDV), dtype=tl.float32)
    for start in range(0, _keys_end(pid_m, TQ, TK, BM, CAUSAL), BN):
        cols = start + tl.arange(0, BN)
        kt = _tile(K, skb, skh, skt, skd, bb, hh, cols, dims, TK, D, True)
        v = _tile(V, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV, False)
        _, p, _ = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, IEEE)
        acc += _dot(p.to(v.dtype), v, IEEE)
    _store(O, sob, soh, sot, sod, bb, hh, rows, vdims, TQ, DV, acc * r[:, None])


@triton.jit
def _dkdv_kernel(Q, K, V, DO, DK, DV_, sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd,
                 sob, soh, sot, sod, H, TQ, TK, D, DV, scale, bias,
                 CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
                 IEEE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    """dK and dV of one key block; Q, K, V, DO strides are shared by DK/DV (contiguous like K, V)."""
    pid_n, cols, bb, hh, dims, vdims = _program(H, BN, BD, BDV)
    kt = _tile(K, skb, skh, skt, skd, bb, hh, cols, dims, TK, D, True)
    vt = _tile(V, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV, True)
    dk = tl.zeros((BN, BD), dtype=tl.float32)
    dv = tl.zeros((BN, BDV), dtype=tl.float32)
    lo = 0
    if CAUSAL:
        lo = tl.maximum(pid_n * BN - (TK - TQ), 0) // BM * BM
    for start in range(lo, TQ, BM):
        rows = start + tl.arange(0, BM)
        q, do, b = _query_block(Q, DO, sqb, sqh, sqt, sqd, sob, soh, sot, sod, bb, hh, rows, dims, vdims, TQ, TK, D,
                                DV, bias, CAUSAL, BIAS_MODE, ROW_MODE)
        s, p, valid = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, IEEE)
        dv += _dot(tl.trans(p.to(q.dtype)), do, IEEE)
        dp = _dot(do, vt, IEEE)
        ds = _score_grad(s, p, valid, dp, ACT)
        dk += _dot(tl.trans(ds.to(q.dtype)), q, IEEE)
    _store(DK, skb, skh, skt, skd, bb, hh, cols, dims, TK, D, dk * scale)
    _store(DV_, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV, dv)


@triton.jit
def _dq_kernel(Q, K, V, DO, DQ, sqb, sqh, sqt, sqd, skb, skh, skt, skd, svb, svh, svt, svd,
               sob, soh, sot, sod, H, TQ, TK, D, DV, scale, bias,
               CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
               IEEE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    """dQ of one query block (DQ strided like Q)."""
    pid_m, rows, bb, hh, dims, vdims = _program(H, BM, BD, BDV)
    q, do, b = _query_block(Q, DO, sqb, sqh, sqt, sqd, sob, soh, sot, sod, bb, hh, rows, dims, vdims, TQ, TK, D, DV,
                            bias, CAUSAL, BIAS_MODE, ROW_MODE)
    dq = tl.zeros((BM, BD), dtype=tl.float32)
    for start in range(0, _keys_end(pid_m, TQ, TK, BM, CAUSAL), BN):
        cols = start + tl.arange(0, BN)
        kt = _tile(K, skb, skh, skt, skd, bb, hh, cols, dims, TK, D, True)
        vt = _tile(V, svb, svh, svt, svd, bb, hh, cols, vdims, TK, DV, True)
        s, p, valid = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, IEEE)
        dp = _dot(do, vt, IEEE)
        ds = _score_grad(s, p, valid, dp, ACT)
        dq += _dot(ds.to(q.dtype), tl.trans(kt), IEEE)
    _store(DQ, sqb, sqh, sqt, sqd, bb, hh, rows, dims, TQ, D, dq * scale)


def _strides(*tensors: torch.Tensor) -> list[int]:
    return [s for t in tensors for s in t.stride()]


def _block(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


class _Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, act, bias_mode, bias, row_mode):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        batch, heads, tq, d = q.shape
        tk, dv = k.shape[2], v.shape[3]
        out = torch.empty(batch, heads, tq, dv, device=q.device, dtype=q.dtype)
        meta = dict(CAUSAL=causal, ACT=act, BIAS_MODE=bias_mode, ROW_MODE=row_mode, IEEE=q.dtype == torch.float32,
                    BM=BLOCK_M, BN=BLOCK_N, BD=_block(d), BDV=_block(dv))
        grid = (triton.cdiv(tq, BLOCK_M), batch * heads)
        _fwd_kernel[grid](q, k, v, out, *_strides(q, k, v, out), heads, tq, tk, d, dv, scale, bias, **meta)
        ctx.save_for_backward(q, k, v)
        ctx.args = (scale, bias, meta)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        scale, bias, meta = ctx.args
        grad_out = grad_out.contiguous()
        batch, heads, tq, d = q.shape
        tk, dv = k.shape[2], v.shape[3]
        dq, dk, dv_ = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        strides = _strides(q, k, v, grad_out)
        _dkdv_kernel[(triton.cdiv(tk, BLOCK_N), batch * heads)](q, k, v, grad_out, dk, dv_, *strides, heads, tq, tk,
                                                                d, dv, scale, bias, **meta)
        _dq_kernel[(triton.cdiv(tq, BLOCK_M), batch * heads)](q, k, v, grad_out, dq, *strides, heads, tq, tk, d, dv,
                                                              scale, bias, **meta)
        return dq, dk, dv_, None, None, None, None, None, None


def fused_attention(q, k, v, *, causal: bool, scale: float, activation: str = "relu", bias_mode: str = "none",
                    bias: float = 0.0, row_mode: str = "none") -> torch.Tensor:
    """The Triton form of :func:`experiments.attention._elementwise.elementwise_attention`."""
    return _Fused.apply(q, k, v, causal, float(scale), ACTIVATIONS.index(activation), BIAS_MODES.index(bias_mode),
                        float(bias), ROW_MODES.index(row_mode))
