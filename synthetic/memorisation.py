"""Memorisation: a fixed global key-to-value map learnt in the weights (MAD, arXiv 2403.17844).

A table of ``num_facts`` facts ``key -> value`` is drawn once from
``map_seed`` (keys distinct, from ``1 .. V/2 - 1``; values from ``V/2 .. V-1``,
repeats allowed). Every example is a sequence of ``seq_len / 2`` facts drawn
uniformly from the table, written ``k v k v ...``; the label at each key is
its value, at the key's first occurrence only (a repeated key could be
answered by copying from earlier in the example). Nothing in the context
gives the answer away, so the model must store the table in its weights: the FFN-as-memory probe of ReLUFormer's S2/S3. Train and test draw
from the same table; the test set only fixes which facts are asked.

Worked example (table {3: 9, 5: 12}, seq_len=6)::

    position  0  1  2   3  4  5
    input     5 12  3   9  5 12
    label     12 .  9   .  .  .      (. = -100; key 5 at 4 is a repeat)

Constraints: ``num_facts <= V/2 - 1``, ``seq_len`` even and at least 2.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.config import param, require
from synthetic import IGNORE_INDEX, Task, register


@dataclasses.dataclass(frozen=True)
class MemorisationConfig:
    vocab_size: int = param(256, "vocabulary: keys from 1..V/2-1, values from V/2..V-1")
    num_facts: int = param(64, "size of the fixed key -> value table")
    seq_len: int = param(32, "tokens per example (seq_len / 2 facts)")
    map_seed: int = param(7, "seed of the fact table")
    num_test_examples: int = param(1000, "size of the fixed test set")
    test_seed: int = param(1_000_003, "seed of the fixed test set")

    def __post_init__(self):
        require(self.vocab_size >= 4, f"vocab_size must be at least 4, got {self.vocab_size}")
        require(1 <= self.num_facts <= self.vocab_size // 2 - 1,
                f"num_facts={self.num_facts} distinct keys need vocab_size >= {2 * (self.num_facts + 1)}, "
                f"got {self.vocab_size}")
        require(self.seq_len >= 2 and self.seq_len % 2 == 0, f"seq_len must be even and >= 2, got {self.seq_len}")
        require(self.num_test_examples >= 1, f"num_test_examples must be at least 1, got {self.num_test_examples}")


def fact_table(config: MemorisationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(num_facts,)`` keys and values, the same for every split and device."""
    generator = torch.Generator().manual_seed(config.map_seed)
    half = config.vocab_size // 2
    keys = torch.randperm(half - 1, generator=generator)[: config.num_facts] + 1
    values = torch.randint(half, config.vocab_size, (config.num_facts,), generator=generator)
    return keys, values


def generate(config: MemorisationConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device = generator.device
    keys, values = (t.to(device) for t in fact_table(config))
    which = torch.randint(config.num_facts, (num_examples, config.seq_len // 2), generator=generator, device=device)
    inputs = torch.empty(num_examples, config.seq_len, dtype=torch.long, device=device)
    inputs[:, 0::2] = keys[which]
    inputs[:, 1::2] = values[which]
    # a repeated key could be answered by copying from earlier in the example: label first occurrences only
    seen = (which.unsqueeze(2) == which.unsqueeze(1)).tril(diagonal=-1).any(dim=2)  # (B, facts per example)
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[:, 0::2] = torch.where(seen, IGNORE_INDEX, values[which])
    return inputs, labels


register(Task(name="memorisation", config=MemorisationConfig, generate=generate,
              summary="a fixed key -> value table learnt in the weights"))
