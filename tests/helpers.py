"""What the tests share: inputs and their ids, the tolerance helper, and the environment of a command run as a
user would."""

from __future__ import annotations

import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

TOLERANCE = {
    # fp32 comparisons of two orders of the same sums
    torch.float32: dict(atol=1e-5, rtol=1e-4),
    torch.float64: dict(atol=1e-10, rtol=1e-9),
    # the blockwise form against the materialised reference, both in fp64: the same products summed in another
    # order (over key blocks instead of in one matmul), so fp64 rounding is all that separates them
    "fp64_blocks": dict(atol=1e-10, rtol=1e-10),
    # an fp32 kernel against the reference in fp64: fp32 rounding of each product and of sums over up to 130 keys
    "fp32_against_fp64": dict(atol=1e-4, rtol=1e-4),
    # whole modules (projections, norms) in fp32, one form against another
    "fp32_modules": dict(atol=1e-5, rtol=1e-5),
    # Performer's random-feature estimate of exp(q.k / sqrt d): a Monte Carlo mean over 4096 features, exact only
    # in expectation
    "random_features": dict(atol=1e-8, rtol=0.1),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "",
                 tolerance: str | torch.dtype | None = None) -> None:
    """``actual`` equals ``expected`` in shape and within ``TOLERANCE[tolerance]`` (default: expected's dtype)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOLERANCE[expected.dtype if tolerance is None else tolerance]
    torch.testing.assert_close(actual, expected, **tol, msg=lambda m: f"{what}: {m}")


def _dims(shape: tuple[int, ...]) -> tuple[int, int, int, int, int, int]:
    """``(B, H, Tq, Tk, D, Dv)`` from ``(B, H, T, D)`` (self-attention) or ``(B, H, Tq, Tk, D, Dv)``."""
    if len(shape) == 4:
        batch, heads, time, dim = shape
        return batch, heads, time, time, dim, dim
    return tuple(shape)


def shape_id(shape: tuple[int, ...]) -> str:
    """A readable test id: ``(2, 3, 16, 8)`` is ``B2-H3-T16-D8``; ``(2, 3, 33, 100, 16, 40)`` is
    ``B2-H3-Tq33-Tk100-D16-Dv40``."""
    if len(shape) == 4:
        return "B{}-H{}-T{}-D{}".format(*shape)
    return "B{}-H{}-Tq{}-Tk{}-D{}-Dv{}".format(*shape)


def qkv(shape: tuple[int, ...], *, dtype: torch.dtype = torch.float64, seed: int = 0, device: str = "cpu",
        requires_grad: bool = False, spread: float = 1.0) -> list[torch.Tensor]:
    """``q, k, v`` of ``shape`` (see :func:`shape_id`), standard normal times ``spread``, drawn in that order from
    one generator seeded with ``seed`` (on the CPU, then moved to ``device``)."""
    batch, heads, tq, tk, d, dv = _dims(shape)
    generator = torch.Generator().manual_seed(seed)
    tensors = [spread * torch.randn(batch, heads, time, dim, generator=generator, dtype=dtype)
               for time, dim in ((tq, d), (tk, d), (tk, dv))]
    return [t.to(device).requires_grad_(requires_grad) for t in tensors]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a command run in a subprocess as from a user's shell: one torch thread, the
    repository importable, and no ``TRITON_INTERPRET`` (the test session sets it for the kernel tests)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}
    env.pop("TRITON_INTERPRET", None)
    return env
