"""What the tests share: the tolerance helper, and the environment of a command run as a user would."""

from __future__ import annotations

import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

# fp32 comparisons of two orders of the same sums
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-9)}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOLERANCE[expected.dtype]
    torch.testing.assert_close(actual, expected, **tol, msg=lambda m: f"{what}: {m}")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a command run in a subprocess as from a user's shell: one torch thread, the
    repository importable, and no ``TRITON_INTERPRET`` (the test session sets it for the kernel tests)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}
    env.pop("TRITON_INTERPRET", None)
    return env
