"""What the fused element-wise kernels take, written without Triton: modes, block tables, head-dim limits.

The dispatcher (:mod:`experiments.attention._elementwise`), the kernels
(:mod:`experiments.attention._elementwise_triton`) and the compile check
(:mod:`experiments.kernel_compile`) all read this module, so a machine
without Triton can still tell which head dims the kernels take, and neither
the dispatcher nor the kernels import each other for it.

The kernels' mode codes are positions in :data:`ACTIVATIONS`,
:data:`BIAS_MODES` and :data:`ROW_MODES`. A head dim is padded to
:func:`head_block` inside the kernels; the largest head dim a dtype takes is
derived from its block table (:func:`max_head_dim`), so the tables are the
one place the limit is set.
"""

from __future__ import annotations

import torch

ACTIVATIONS = ("relu", "sigmoid")  # the kernels' ACT: 0, 1
BIAS_MODES = ("none", "log_n", "constant")  # BIAS_MODE: b_i = 0, -log n_i, or a given constant
ROW_MODES = ("none", "count", "sqrt_half_count")  # ROW_MODE: r_i = 1, 1 / n_i, 1 / sqrt(n_i / 2)
KERNELS = ("fwd", "dkdv", "dq")  # the forward, the dK/dV backward, the dQ backward
SMALLEST_HEAD_BLOCK = 16  # tl.dot needs every dimension of a tile to be at least 16

# (kernel, padded head dim) -> (query block, key block, warps), per input width, chosen so that no kernel
# spills registers or runs out of shared memory on sm_80 or sm_90 at any epilogue (the table
# benchmarks/triton_compile.md, rebuilt by `make kernels`). The backward kernels hold two fp32 accumulators
# and several score tiles at once, so they take smaller blocks or more warps as the head dim grows; exact
# fp32 products (FMA, no tensor cores) need smaller blocks still, and at head dim 128 the fp32 dK/dV kernel
# spills at every block from 16 x 16 to 64 x 64 with 2 to 8 warps, so BLOCKS_FP32 stops at 64.
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
BLOCKS = {torch.float16: BLOCKS_16BIT, torch.bfloat16: BLOCKS_16BIT, torch.float32: BLOCKS_FP32}
NUM_STAGES = 3


def next_power_of_2(n: int) -> int:
    """The smallest power of two at least ``n`` (``n >= 1``), as ``triton.next_power_of_2``."""
    return 1 << (n - 1).bit_length()


def head_block(dim: int) -> int:
    """The power-of-two block a head dimension is padded to inside the kernels."""
    return max(SMALLEST_HEAD_BLOCK, next_power_of_2(dim))


def max_head_dim(dtype: torch.dtype) -> int:
    """The largest head dim the fused kernels take at ``dtype``: the largest padded head dim up to which every
    kernel has blocks at every padded size (0 for a dtype the kernels do not take)."""
    blocks = BLOCKS.get(dtype, {})
    limit, size = 0, SMALLEST_HEAD_BLOCK
    while all((kernel, size) in blocks for kernel in KERNELS):
        limit, size = size, 2 * size
    return limit


def blocks_for(kernel: str, dtype: torch.dtype, head_dim: int) -> tuple[int, int, int]:
    """``(query block, key block, warps)`` of ``kernel`` at ``dtype`` for a head dim (the larger of q's and v's)."""
    return BLOCKS[dtype][(kernel, head_block(head_dim))]
