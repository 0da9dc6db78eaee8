"""Selective copying (Gu & Dao 2023, Mamba, arXiv 2312.00752; the MAD suite, arXiv 2403.17844).

``num_tokens`` content tokens are scattered, in order, at random positions of
a region of ``region_len`` blanks; then come ``num_tokens`` marker tokens, and
at the ``i``-th marker the label is the ``i``-th content token. Tokens:
``BLANK = 0``, ``MARKER = 1``, content ``2 .. V-1``. ``seq_len = region_len +
num_tokens``.

Worked example (region_len=6, num_tokens=2, content 7 at position 1 and 4 at
position 4)::

    position  0  1  2  3  4  5  6  7
    input     0  7  0  0  4  0  1  1
    label     .  .  .  .  .  .  7  4      (. = -100)

Constraints: ``V >= 3``; ``1 <= num_tokens <= region_len``.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.config import param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register

BLANK, MARKER, FIRST_CONTENT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class SelectiveCopyingConfig(TaskConfig):
    vocab_size: int = param(16, "vocabulary size; content tokens are 2..V-1")
    region_len: int = param(32, "positions the content tokens are scattered over")
    num_tokens: int = param(4, "content tokens to copy, in order")

    def __post_init__(self):
        super().__post_init__()
        require(self.vocab_size >= FIRST_CONTENT + 1, f"vocab_size must be at least 3, got {self.vocab_size}")
        require(1 <= self.num_tokens <= self.region_len,
                f"need 1 <= num_tokens <= region_len, got num_tokens={self.num_tokens}, region_len={self.region_len}")

    @property
    def seq_len(self) -> int:
        return self.region_len + self.num_tokens


def generate(config: SelectiveCopyingConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, batch, m = generator.device, num_examples, config.num_tokens
    noise = torch.rand(batch, config.region_len, generator=generator, device=device)
    positions = noise.topk(m, dim=1).indices.sort(dim=1).values  # (B, M), increasing
    content = torch.randint(FIRST_CONTENT, config.vocab_size, (batch, m), generator=generator, device=device)
    inputs = torch.full((batch, config.seq_len), BLANK, dtype=torch.long, device=device)
    inputs.scatter_(1, positions, content)
    inputs[:, config.region_len:] = MARKER
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[:, config.region_len:] = content
    return inputs, labels


def chance(config: SelectiveCopyingConfig) -> float:
    """A uniform pick among the content tokens."""
    return 1.0 / (config.vocab_size - FIRST_CONTENT)


register(Task(name="selective_copying", config=SelectiveCopyingConfig, generate=generate, chance=chance,
              summary="copy the scattered content tokens, in order, at the markers"))
