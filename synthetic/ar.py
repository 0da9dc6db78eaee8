"""Single-query associative recall (Ba et al. 2016; the AR task of Zoology, arXiv 2312.04927).

The context is ``k1 v1 ... kN vN`` (keys from ``1..V/2-1``, values from
``V/2..V-1``, distinct within an example, as in MQAR); filler follows, and the
last position holds one of the keys, chosen uniformly. The label there is its
value; every other label is ``-100``. Filler is token 0 (``blank``) or random
tokens (``random``) that avoid the example's keys unless
``filler_may_collide``.

Worked example (V=16, seq_len=8, N=2, blank filler; keys 3, 5 with values
9, 14; key 5 queried)::

    position  0  1  2   3  4  5  6  7
    input     3  9  5  14  0  0  0  5
    label     .  .  .   .  .  .  .  14        (. = -100)

Constraints: ``N <= V/2 - 1`` distinct keys, ``N <= V - V/2`` values, and
``seq_len >= 2N + 1``.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.config import check_choices, param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register
from synthetic._recall import FILLERS, distinct, filler


@dataclasses.dataclass(frozen=True)
class ARConfig(TaskConfig):
    vocab_size: int = param(64, "vocabulary size V: keys from 1..V/2-1, values from V/2..V-1")
    seq_len: int = param(32, "tokens per example; the query is the last one")
    num_kv_pairs: int = param(8, "key-value pairs N in the context")
    filler: str = param("blank", "positions between context and query: blank (token 0) or random", choices=FILLERS)
    filler_may_collide: bool = param(False, "random filler may equal one of the example's keys")

    def __post_init__(self):
        super().__post_init__()
        check_choices(self)
        n, v = self.num_kv_pairs, self.vocab_size
        require(n >= 1, f"num_kv_pairs must be at least 1, got {n}")
        require(v >= 4, f"vocab_size must be at least 4, got {v}")
        require(n <= v // 2 - 1, f"num_kv_pairs={n} distinct keys need vocab_size >= {2 * (n + 1)}, got {v}")
        require(n <= v - v // 2, f"num_kv_pairs={n} distinct values need vocab_size >= {2 * n}, got {v}")
        require(self.seq_len >= 2 * n + 1, f"num_kv_pairs={n} pairs and a query need seq_len >= 2*num_kv_pairs+1 "
                                           f"= {2 * n + 1}, got seq_len={self.seq_len}")


def generate(config: ARConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, n, batch = generator.device, config.num_kv_pairs, num_examples
    half = config.vocab_size // 2
    keys = distinct(1, half, n, batch, generator)  # (B, N)
    values = distinct(half, config.vocab_size, n, batch, generator)  # (B, N)
    asked = torch.randint(n, (batch, 1), generator=generator, device=device)  # (B, 1)
    inputs = torch.zeros(batch, config.seq_len, dtype=torch.long, device=device)
    inputs[:, 0:2 * n:2] = keys
    inputs[:, 1:2 * n:2] = values
    if config.filler == "random":
        inputs[:, 2 * n:-1] = filler(config, keys, (batch, config.seq_len - 2 * n - 1), generator)
    inputs[:, -1] = keys.gather(1, asked).squeeze(1)
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[:, -1] = values.gather(1, asked).squeeze(1)
    return inputs, labels


def slices(config: ARConfig, batch):
    """Which pair was asked (0 = first): recall against the pair's distance from the query."""
    inputs, _ = batch
    keys = inputs[:, 0:2 * config.num_kv_pairs:2]
    return {"pair_index": (keys == inputs[:, -1:]).long().argmax(dim=1)}


def chance(config: ARConfig) -> float:
    """A uniform pick among the example's ``N`` values."""
    return 1.0 / config.num_kv_pairs


register(Task(name="ar", config=ARConfig, generate=generate, slices=slices, chance=chance,
              summary="single-query associative recall: one key asked at the end"))
