"""What the recall tasks (MQAR, AR) share: distinct keys and values, and filler that avoids the keys."""

from __future__ import annotations

from typing import Any

import torch

FILLERS = ("blank", "random")


def distinct(low: int, high: int, count: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct integers from ``[low, high)`` per row, in random order."""
    noise = torch.rand(batch, high - low, generator=generator, device=generator.device)
    return noise.topk(count, dim=1).indices + low  # (batch, count)


def filler(config: Any, keys: torch.Tensor, shape, generator: torch.Generator) -> torch.Tensor:
    """Random filler tokens, avoiding the row's keys unless collisions are allowed."""
    device = generator.device
    if config.filler_may_collide:
        return torch.randint(config.vocab_size, shape, generator=generator, device=device)
    # Draw from V - N tokens, then step over each excluded key in ascending order.
    tokens = torch.randint(config.vocab_size - keys.shape[1], shape, generator=generator, device=device)
    for key in keys.sort(dim=1).values.unbind(dim=1):  # (batch,) each
        tokens = tokens + (tokens >= key.unsqueeze(1))
    return tokens
