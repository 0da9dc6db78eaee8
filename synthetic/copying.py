"""Copying with length generalisation (Jelassi et al. 2024, "Repeat After Me", arXiv 2402.01032).

An example is ``BOS s_1 .. s_L SEP s_1 .. s_L EOS`` followed by padding, with
``s`` uniform content tokens and ``L`` drawn uniformly from the split's length
range (``train_min_len..train_max_len`` for training batches,
``test_min_len..test_max_len`` for the test set, so a model trained short is
tested long). Labels follow the next-token convention: from ``SEP`` on, each
position is labelled with the token that comes next (the copy and the final
``EOS``); everything else is ``-100``. Special tokens: ``PAD = 0``,
``BOS = 1``, ``SEP = 2``, ``EOS = 3``; content tokens ``4 .. V-1``.

Worked example (L=3, s = 7 5 9, seq_len=10)::

    position  0  1  2  3  4  5  6  7  8  9
    input     1  7  5  9  2  7  5  9  3  0
    label     .  .  .  .  7  5  9  3  .  .      (. = -100)

Constraints: ``V >= 5``; ``1 <= min <= max`` for both ranges;
``seq_len >= 2 * max(train_max_len, test_max_len) + 3``.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.config import param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register

PAD, BOS, SEP, EOS = 0, 1, 2, 3
FIRST_CONTENT = 4


@dataclasses.dataclass(frozen=True)
class CopyingConfig(TaskConfig):
    vocab_size: int = param(16, "vocabulary size; content tokens are 4..V-1")
    seq_len: int = param(64, "padded example length; must hold 2 * longest copy + 3")
    train_min_len: int = param(1, "shortest training string")
    train_max_len: int = param(10, "longest training string")
    test_min_len: int = param(1, "shortest test string")
    test_max_len: int = param(10, "longest test string (above train_max_len tests length generalisation)")

    def __post_init__(self):
        super().__post_init__()
        require(self.vocab_size >= FIRST_CONTENT + 1,
                f"vocab_size must be at least {FIRST_CONTENT + 1} (4 special tokens + content), got {self.vocab_size}")
        for split in ("train", "test"):
            low, high = getattr(self, f"{split}_min_len"), getattr(self, f"{split}_max_len")
            require(1 <= low <= high, f"need 1 <= {split}_min_len <= {split}_max_len, got {low}, {high}")
        longest = max(self.train_max_len, self.test_max_len)
        require(self.seq_len >= 2 * longest + 3,
                f"a copy of {longest} tokens needs seq_len >= 2*{longest}+3 = {2 * longest + 3}, got {self.seq_len}")


def generate(config: CopyingConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, batch, width = generator.device, num_examples, config.seq_len
    low, high = getattr(config, f"{split}_min_len"), getattr(config, f"{split}_max_len")
    lengths = torch.randint(low, high + 1, (batch, 1), generator=generator, device=device)  # (B, 1)
    content = torch.randint(FIRST_CONTENT, config.vocab_size, (batch, width), generator=generator, device=device)
    pos = torch.arange(width, device=device).unsqueeze(0)  # (1, T)
    sep = lengths + 1  # position of SEP
    in_first = (pos >= 1) & (pos < sep)
    in_second = (pos > sep) & (pos <= 2 * lengths + 1)
    source_index = (pos - sep).clamp(min=1, max=width - 1)  # second copy's position t holds s_{t - sep}
    copied = content.gather(1, source_index)
    inputs = torch.full((batch, width), PAD, dtype=torch.long, device=device)
    inputs = torch.where(pos == 0, BOS, inputs)
    inputs = torch.where(in_first, content, inputs)
    inputs = torch.where(pos == sep, SEP, inputs)
    inputs = torch.where(in_second, copied, inputs)
    inputs = torch.where(pos == 2 * lengths + 2, EOS, inputs)
    labels = torch.full_like(inputs, IGNORE_INDEX)
    answer = (pos >= sep) & (pos <= 2 * lengths + 1)
    next_tokens = torch.cat([inputs[:, 1:], inputs.new_full((batch, 1), PAD)], dim=1)
    labels = torch.where(answer, next_tokens, labels)
    return inputs, labels


def slices(config: CopyingConfig, batch):
    _, labels = batch
    return {"length": (labels != IGNORE_INDEX).sum(dim=1) - 1}


def chance(config: CopyingConfig) -> float:
    """A uniform pick among the content tokens (the end token after the copy is labelled too, and ignored here)."""
    return 1.0 / (config.vocab_size - FIRST_CONTENT)


register(Task(name="copying", config=CopyingConfig, generate=generate, slices=slices, chance=chance,
              summary="copy a string after a separator; train and test length ranges"))
