"""The one tolerance helper the tests share."""

from __future__ import annotations

import torch

# fp32 comparisons of two orders of the same sums
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-9)}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOLERANCE[expected.dtype]
    torch.testing.assert_close(actual, expected, **tol, msg=lambda m: f"{what}: {m}")
