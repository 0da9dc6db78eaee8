"""Fused element-wise attention in Triton: ``o_i = r_i sum_j f(scale q_i . k_j + b_i) v_j``.

Forward: one program per (query block, batch x head) walks the visible key
blocks and accumulates ``f(S) V`` in fp32. Unlike FlashAttention there is
no running maximum and no row sum to carry or rescale: ``f`` is applied
element-wise and the row scale ``r_i`` (``1``, ``1/n_i`` or
``1/sqrt(n_i/2)``) is a constant multiplied once in the epilogue. Backward:
one kernel per key block for dK and dV, one per query block for dQ, each
recomputing the block's scores (nothing of size ``T x T`` is stored), and
no ``rowsum(dO * O)`` term, since no normalisation couples a row's weights.

Arguments are named as in Triton's fused-attention tutorial: ``stride_qz,
stride_qh, stride_qm, stride_qk`` are Q's strides along batch, head, query
position and head dim (``n`` the key position for K and V), ``BLOCK_M`` and
``BLOCK_N`` the query and key blocks. The mode codes (``ACT``,
``BIAS_MODE``, ``ROW_MODE``) are positions in the vocabularies of
:mod:`experiments.attention._elementwise_spec`. Causal masks are aligned to
the end of the keys, as everywhere in this package. Each kernel takes its
blocks and warps from the spec's block tables by dtype and head dim (no
autotuning: the interpreter cannot run more than one configuration); inputs
are fp32, fp16 or bf16 with fp32 accumulation, at the head dims of
:func:`~experiments.attention._elementwise_spec.max_head_dim`. What runs is a
list of :class:`Launch` objects, which :mod:`experiments.kernel_compile`
compiles for sm_80 and sm_90 without a GPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import triton
import triton.language as tl

from experiments.attention import _elementwise_spec as spec


@triton.jit
def _row_terms(rows, TQ, TK, bias, CAUSAL: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr):
    """The bias ``b_i`` and row scale ``r_i`` of query positions ``rows``, from the count of keys each sees."""
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
    # scores: scale q k^T + b
    s = _dot(q, kt, F32) * scale + b[:, None]
    valid = (rows[:, None] < TQ) & (cols[None, :] < TK)
    if CAUSAL:
        valid = valid & (cols[None, :] <= rows[:, None] + (TK - TQ))
    # weights: f(s) element-wise, 0 where the key is not visible
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
def _tile(ptr, stride_z, stride_h, stride_t, stride_d, off_z, off_h, idx, dims, T, D):
    """Positions ``idx`` of batch ``off_z``, head ``off_h`` of a ``(B, H, T, D)`` tensor as an ``(idx, dims)``
    tile; 0 past ``T`` and ``D``."""
    return tl.load(ptr + off_z * stride_z + off_h * stride_h + idx[:, None] * stride_t + dims[None, :] * stride_d,
                   mask=(idx[:, None] < T) & (dims[None, :] < D), other=0.0)


@triton.jit
def _tile_t(ptr, stride_z, stride_h, stride_t, stride_d, off_z, off_h, idx, dims, T, D):
    """The same positions as a ``(dims, idx)`` tile. A helper of its own, not a constexpr branch of
    :func:`_tile`: the compiler types every ``return`` of a function alike, and the two shapes differ unless the
    blocks are square (the interpreter, running plain Python, would not notice)."""
    return tl.load(ptr + off_z * stride_z + off_h * stride_h + idx[None, :] * stride_t + dims[:, None] * stride_d,
                   mask=(idx[None, :] < T) & (dims[:, None] < D), other=0.0)


@triton.jit
def _keys_end(pid_m, TQ, TK, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr):
    """One past the last key a block of queries sees (causal: aligned to the end of the keys)."""
    hi = TK
    if CAUSAL:
        hi = tl.minimum(TK, (pid_m + 1) * BLOCK_M + TK - TQ)
    return hi


@triton.jit
def _program(H, BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """This program's block number along time, the ``BLOCK`` positions it owns, its batch and head, and the
    head-dimension ranges of keys and values (grid: (time blocks, batch x heads))."""
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1)
    return (pid, pid * BLOCK + tl.arange(0, BLOCK), pid_bh // H, pid_bh % H, tl.arange(0, BLOCK_D),
            tl.arange(0, BLOCK_DV))


@triton.jit
def _store(ptr, stride_z, stride_h, stride_t, stride_d, off_z, off_h, idx, dims, T, D, value):
    """Write ``value``, an ``(idx, dims)`` tile, into a ``(B, H, T, D)`` tensor; nothing past ``T`` and ``D``."""
    tl.store(ptr + off_z * stride_z + off_h * stride_h + idx[:, None] * stride_t + dims[None, :] * stride_d,
             value.to(ptr.dtype.element_ty), mask=(idx[:, None] < T) & (dims[None, :] < D))


@triton.jit
def _query_block(Q, DO, stride_qz, stride_qh, stride_qm, stride_qk, stride_doz, stride_doh, stride_dom, stride_dok,
                 off_z, off_h, rows, dims, vdims, TQ, TK, HEAD_DIM, HEAD_DIM_V, bias,
                 CAUSAL: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr):
    """What the backward kernels need of a block of queries: ``q``, ``dO`` times the row scale, and the bias."""
    q = _tile(Q, stride_qz, stride_qh, stride_qm, stride_qk, off_z, off_h, rows, dims, TQ, HEAD_DIM)
    do = _tile(DO, stride_doz, stride_doh, stride_dom, stride_dok, off_z, off_h, rows, vdims, TQ, HEAD_DIM_V)
    b, r = _row_terms(rows, TQ, TK, bias, CAUSAL, BIAS_MODE, ROW_MODE)
    return q, (do.to(tl.float32) * r[:, None]).to(q.dtype), b


@triton.jit
def _fwd_kernel(Q, K, V, O,
                stride_qz, stride_qh, stride_qm, stride_qk, stride_kz, stride_kh, stride_kn, stride_kk,
                stride_vz, stride_vh, stride_vn, stride_vk, stride_oz, stride_oh, stride_om, stride_ok,
                H, TQ, TK, HEAD_DIM, HEAD_DIM_V, scale, bias,
                CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
                F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                BLOCK_DV: tl.constexpr):
    """O of one query block: ``r_i sum_j f(S_ij) V_j`` over the key blocks it sees."""
    pid_m, rows, off_z, off_h, dims, vdims = _program(H, BLOCK_M, BLOCK_D, BLOCK_DV)
    # load: the query block, its bias and its row scale
    q = _tile(Q, stride_qz, stride_qh, stride_qm, stride_qk, off_z, off_h, rows, dims, TQ, HEAD_DIM)
    b, r = _row_terms(rows, TQ, TK, bias, CAUSAL, BIAS_MODE, ROW_MODE)
    acc = tl.zeros((BLOCK_M, BLOCK_DV), dtype=tl.float32)
    for start in range(0, _keys_end(pid_m, TQ, TK, BLOCK_M, CAUSAL), BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        # load: K^T and V of the key block
        kt = _tile_t(K, stride_kz, stride_kh, stride_kn, stride_kk, off_z, off_h, cols, dims, TK, HEAD_DIM)
        v = _tile(V, stride_vz, stride_vh, stride_vn, stride_vk, off_z, off_h, cols, vdims, TK, HEAD_DIM_V)
        # scores and weights: P = f(scale q k^T + b), masked to 0
        _, p, _ = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, F32)
        # accumulate: P V, in fp32
        acc += _dot(p.to(v.dtype), v, F32)
    # epilogue: the row scale, once per row; store
    _store(O, stride_oz, stride_oh, stride_om, stride_ok, off_z, off_h, rows, vdims, TQ, HEAD_DIM_V,
           acc * r[:, None])


@triton.jit
def _dkdv_kernel(Q, K, V, DO, DK, DV,
                 stride_qz, stride_qh, stride_qm, stride_qk, stride_kz, stride_kh, stride_kn, stride_kk,
                 stride_vz, stride_vh, stride_vn, stride_vk, stride_doz, stride_doh, stride_dom, stride_dok,
                 H, TQ, TK, HEAD_DIM, HEAD_DIM_V, scale, bias,
                 CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
                 F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                 BLOCK_DV: tl.constexpr):
    """dK and dV of one key block over the query blocks that see it; DK and DV are strided like K and V."""
    pid_n, cols, off_z, off_h, dims, vdims = _program(H, BLOCK_N, BLOCK_D, BLOCK_DV)
    # load: K^T and V^T of the key block
    kt = _tile_t(K, stride_kz, stride_kh, stride_kn, stride_kk, off_z, off_h, cols, dims, TK, HEAD_DIM)
    vt = _tile_t(V, stride_vz, stride_vh, stride_vn, stride_vk, off_z, off_h, cols, vdims, TK, HEAD_DIM_V)
    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
    lo = 0
    if CAUSAL:
        lo = tl.maximum(pid_n * BLOCK_N - (TK - TQ), 0) // BLOCK_M * BLOCK_M
    for start in range(lo, TQ, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        # load: q, dO r and the bias of the query block
        q, do, b = _query_block(Q, DO, stride_qz, stride_qh, stride_qm, stride_qk, stride_doz, stride_doh,
                                stride_dom, stride_dok, off_z, off_h, rows, dims, vdims, TQ, TK, HEAD_DIM,
                                HEAD_DIM_V, bias, CAUSAL, BIAS_MODE, ROW_MODE)
        # scores and weights, recomputed
        s, p, valid = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, F32)
        # accumulate: dV += P^T dO; dS from dP = dO V^T; dK += dS^T q
        dv += _dot(tl.trans(p.to(q.dtype)), do, F32)
        dp = _dot(do, vt, F32)
        ds = _score_grad(s, p, valid, dp, ACT)
        dk += _dot(tl.trans(ds.to(q.dtype)), q, F32)
    # epilogue: the logit scale on dK; store both
    _store(DK, stride_kz, stride_kh, stride_kn, stride_kk, off_z, off_h, cols, dims, TK, HEAD_DIM, dk * scale)
    _store(DV, stride_vz, stride_vh, stride_vn, stride_vk, off_z, off_h, cols, vdims, TK, HEAD_DIM_V, dv)


@triton.jit
def _dq_kernel(Q, K, V, DO, DQ,
               stride_qz, stride_qh, stride_qm, stride_qk, stride_kz, stride_kh, stride_kn, stride_kk,
               stride_vz, stride_vh, stride_vn, stride_vk, stride_doz, stride_doh, stride_dom, stride_dok,
               H, TQ, TK, HEAD_DIM, HEAD_DIM_V, scale, bias,
               CAUSAL: tl.constexpr, ACT: tl.constexpr, BIAS_MODE: tl.constexpr, ROW_MODE: tl.constexpr,
               F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
               BLOCK_DV: tl.constexpr):
    """dQ of one query block over the key blocks it sees; DQ is strided like Q."""
    pid_m, rows, off_z, off_h, dims, vdims = _program(H, BLOCK_M, BLOCK_D, BLOCK_DV)
    # load: q, dO r and the bias of the query block
    q, do, b = _query_block(Q, DO, stride_qz, stride_qh, stride_qm, stride_qk, stride_doz, stride_doh, stride_dom,
                            stride_dok, off_z, off_h, rows, dims, vdims, TQ, TK, HEAD_DIM, HEAD_DIM_V, bias, CAUSAL,
                            BIAS_MODE, ROW_MODE)
    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start in range(0, _keys_end(pid_m, TQ, TK, BLOCK_M, CAUSAL), BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        # load: K^T and V^T of the key block
        kt = _tile_t(K, stride_kz, stride_kh, stride_kn, stride_kk, off_z, off_h, cols, dims, TK, HEAD_DIM)
        vt = _tile_t(V, stride_vz, stride_vh, stride_vn, stride_vk, off_z, off_h, cols, vdims, TK, HEAD_DIM_V)
        # scores and weights, recomputed
        s, p, valid = _weights(q, kt, b, rows, cols, TQ, TK, scale, CAUSAL, ACT, F32)
        # accumulate: dS from dP = dO V^T; dQ += dS k
        dp = _dot(do, vt, F32)
        ds = _score_grad(s, p, valid, dp, ACT)
        dq += _dot(ds.to(q.dtype), tl.trans(kt), F32)
    # epilogue: the logit scale; store
    _store(DQ, stride_qz, stride_qh, stride_qm, stride_qk, off_z, off_h, rows, dims, TQ, HEAD_DIM, dq * scale)


def _strides(*tensors: torch.Tensor) -> list[int]:
    return [s for t in tensors for s in t.stride()]


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
    block_m, block_n, warps = spec.blocks_for(kernel, q.dtype, max(d, dv))
    meta = dict(CAUSAL=causal, ACT=act, BIAS_MODE=bias_mode, ROW_MODE=row_mode, F32=q.dtype == torch.float32,
                BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=spec.head_block(d), BLOCK_DV=spec.head_block(dv))
    return meta, dict(num_warps=warps, num_stages=spec.NUM_STAGES)


def forward_launch(q, k, v, out, *, causal: bool, scale: float, act: int, bias_mode: int, bias: float,
                   row_mode: int) -> Launch:
    """The forward kernel writing ``out`` from contiguous ``q, k, v`` (``(B, H, T, D)``)."""
    batch, heads, tq, head_dim = q.shape
    tk, head_dim_v = k.shape[2], v.shape[3]
    meta, options = _modes(q, k, v, causal=causal, act=act, bias_mode=bias_mode, row_mode=row_mode, kernel="fwd")
    grid = (triton.cdiv(tq, meta["BLOCK_M"]), batch * heads)
    args = (q, k, v, out, *_strides(q, k, v, out), heads, tq, tk, head_dim, head_dim_v, scale, bias)
    return Launch(_fwd_kernel, grid, args, meta, options)


def backward_launches(q, k, v, grad_out, dq, dk, dv, *, causal: bool, scale: float, act: int, bias_mode: int,
                      bias: float, row_mode: int) -> tuple[Launch, Launch]:
    """The dK/dV and dQ kernels writing ``dk, dv`` and ``dq`` (strided like k, v and q)."""
    batch, heads, tq, head_dim = q.shape
    tk, head_dim_v = k.shape[2], v.shape[3]
    strides = _strides(q, k, v, grad_out)
    sizes = (heads, tq, tk, head_dim, head_dim_v, scale, bias)
    modes = dict(causal=causal, act=act, bias_mode=bias_mode, row_mode=row_mode)
    meta, options = _modes(q, k, v, **modes, kernel="dkdv")
    dkdv = Launch(_dkdv_kernel, (triton.cdiv(tk, meta["BLOCK_N"]), batch * heads),
                  (q, k, v, grad_out, dk, dv, *strides, *sizes), meta, options)
    meta, options = _modes(q, k, v, **modes, kernel="dq")
    dq_launch = Launch(_dq_kernel, (triton.cdiv(tq, meta["BLOCK_M"]), batch * heads),
                       (q, k, v, grad_out, dq, *strides, *sizes), meta, options)
    return dkdv, dq_launch


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
    limit = spec.max_head_dim(q.dtype)
    if max(q.shape[-1], v.shape[-1]) > limit:
        raise ValueError(f"the fused kernel takes {q.dtype} head dims up to {limit}, got q {q.shape[-1]} and v "
                         f"{v.shape[-1]}; use form='blockwise' or 'materialised' (auto does)")
    return _Fused.apply(q, k, v, causal, float(scale), spec.ACTIVATIONS.index(activation),
                        spec.BIAS_MODES.index(bias_mode), float(bias), spec.ROW_MODES.index(row_mode))
