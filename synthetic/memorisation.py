"""Memorisation: a fixed global key-to-value map learnt in the weights (MAD, arXiv 2403.17844).

A table of ``num_facts`` facts ``key -> value`` is drawn once from
``map_seed``. A key is a tuple of ``key_tokens`` tokens from ``1 .. V/2 - 1``
(distinct tuples); values come from ``V/2 .. V-1``, repeats allowed. With one
key token the map is a bigram table that the embeddings alone can store
(each key's embedding can point at its value's output vector), so the MLP is
not needed; with two or more, the value depends on the tokens jointly and a
nonlinear memory (the MLP) must hold it. Every example is a sequence of
``seq_len / (key_tokens + 1)`` facts drawn uniformly from the table, written
``k v k v ...`` (each ``k`` being ``key_tokens`` tokens); the label at each key's last token is
its value, at the key's first occurrence only (a repeated key could be
answered by copying from earlier in the example). Nothing in the context
gives the answer away, so the model must store the table in its weights: the FFN-as-memory probe of ReLUFormer's S2/S3. Train and test draw
from the same table; the test set only fixes which facts are asked.

Worked example (table {3: 9, 5: 12}, seq_len=6)::

    position  0  1  2   3  4  5
    input     5 12  3   9  5 12
    label     12 .  9   .  .  .      (. = -100; key 5 at 4 is a repeat)

Constraints: ``num_facts <= (V/2 - 1) ** key_tokens``; ``seq_len`` a positive
multiple of ``key_tokens + 1``.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from experiments.config import param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register


@dataclasses.dataclass(frozen=True)
class MemorisationConfig(TaskConfig):
    vocab_size: int = param(256, "vocabulary: key tokens from 1..V/2-1, values from V/2..V-1")
    num_facts: int = param(64, "size of the fixed key -> value table")
    key_tokens: int = param(1, "tokens per key; 2+ makes the value a joint function the MLP must store")
    seq_len: int = param(32, "tokens per example (seq_len / (key_tokens + 1) facts)")
    map_seed: int = param(7, "seed of the fact table")

    def __post_init__(self):
        super().__post_init__()
        require(self.vocab_size >= 4, f"vocab_size must be at least 4, got {self.vocab_size}")
        require(1 <= self.key_tokens <= 8, f"key_tokens must be in [1, 8], got {self.key_tokens}")
        keys = (self.vocab_size // 2 - 1) ** self.key_tokens
        require(keys <= 10**7, f"(V/2-1)**key_tokens = {keys} key tuples is too many to enumerate; use fewer")
        require(1 <= self.num_facts <= keys,
                f"num_facts={self.num_facts} distinct keys need (vocab_size/2 - 1)**key_tokens >= {self.num_facts}, "
                f"got {keys}")
        width = self.key_tokens + 1
        require(self.seq_len >= width and self.seq_len % width == 0,
                f"seq_len must be a positive multiple of key_tokens + 1 = {width}, got {self.seq_len}")


@functools.lru_cache(maxsize=16)
def fact_table(config: MemorisationConfig, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Keys ``(num_facts, key_tokens)`` and values ``(num_facts,)``, the same for every split and device.

    Drawn on the CPU (so every device gets the same table) and cached per (config, device): a training
    step indexes a table already on its device instead of rebuilding it and waiting on a host-to-device
    copy. The tensors are shared between calls, so callers only read them.
    """
    generator = torch.Generator().manual_seed(config.map_seed)
    half = config.vocab_size // 2
    base = half - 1
    index = torch.randperm(base ** config.key_tokens, generator=generator)[: config.num_facts]
    digits = [(index // base**i) % base for i in range(config.key_tokens)]
    keys = torch.stack(digits[::-1], dim=1) + 1
    values = torch.randint(half, config.vocab_size, (config.num_facts,), generator=generator)
    return keys.to(device), values.to(device)


def generate(config: MemorisationConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, width = generator.device, config.key_tokens + 1
    keys, values = fact_table(config, device)
    which = torch.randint(config.num_facts, (num_examples, config.seq_len // width), generator=generator,
                          device=device)
    blocks = torch.cat([keys[which], values[which].unsqueeze(-1)], dim=-1)  # (B, facts, key_tokens + 1)
    inputs = blocks.reshape(num_examples, config.seq_len)
    # a repeated key could be answered by copying from earlier in the example: label first occurrences only
    seen = (which.unsqueeze(2) == which.unsqueeze(1)).tril(diagonal=-1).any(dim=2)  # (B, facts per example)
    labels = torch.full((num_examples, config.seq_len // width, width), IGNORE_INDEX, dtype=torch.long, device=device)
    labels[:, :, -2] = torch.where(seen, IGNORE_INDEX, values[which])  # at the key's last token
    return inputs, labels.reshape(num_examples, config.seq_len)


def chance(config: MemorisationConfig) -> float:
    """Always answering the table's most frequent value (the best guess that stores no fact)."""
    _, values = fact_table(config)
    return float(values.bincount().max()) / config.num_facts


register(Task(name="memorisation", config=MemorisationConfig, generate=generate, chance=chance,
              summary="a fixed key -> value table learnt in the weights"))
