"""Multi-query associative recall, MQAR (Arora et al. 2023, Zoology, arXiv 2312.04927).

Layout, as in Zoology's generator: keys are drawn from ``1 .. V/2 - 1`` and
values from ``V/2 .. V - 1``, distinct within an example. The context is
``k1 v1 k2 v2 ... kN vN``; in the rest of the sequence every key is queried
once, at an even offset ``2 g`` after the context, with the slot ``g`` drawn
without replacement with ``p(g) ∝ (g + 1)^(a - 1)`` (``a = power_a``, 0.01 by
default, so most queries sit early). The label at a query position is the
key's value (the next token in Zoology's shifted sequence); every other label
is ``-100``. The remaining positions are filler: token 0 (``blank``) or
uniform random tokens (``random``, Zoology's default). Zoology's random filler
can equal a key, which then looks like an unlabelled query; here it may only
when ``filler_may_collide`` is set. With ``filler_tokens = F > 0`` the random
filler comes from the vocabulary's top ``F`` ids alone, and keys and values
are laid out as above in ``V - F``: filler disjoint from keys and values, as
in needle retrieval (:mod:`synthetic.needle`), so every filler token competes
for attention and none can be mistaken for a key or a value.

Worked example (V=16, seq_len=12, N=2; keys 3, 5 with values 9, 14, slots
g = 0, 2, blank filler)::

    position  0  1  2   3   4  5  6  7  8  9 10 11
    input     3  9  5  14   3  0  0  0  5  0  0  0
    label     .  .  .   .   9  .  .  .  14 .  .  .      (. = -100)

Constraints (each checked with an error that names it), with ``V`` the
vocabulary less its ``filler_tokens``: ``N`` distinct keys need ``N <= V/2 -
1``; distinct values need ``N <= V - V/2``; ``N`` query slots after the
context need ``4 N <= seq_len``; ``filler_tokens`` needs random filler that
may not collide.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.config import check_choices, param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register
from synthetic._recall import FILLERS, distinct, filler

@dataclasses.dataclass(frozen=True)
class MQARConfig(TaskConfig):
    vocab_size: int = param(256, "vocabulary size V: keys from 1..V/2-1, values from V/2..V-1")
    seq_len: int = param(64, "tokens per example")
    num_kv_pairs: int = param(8, "key-value pairs N per example; each key is queried once")
    power_a: float = param(0.01, "query slot g drawn with p(g) ∝ (g+1)^(a-1); 1 is uniform")
    filler: str = param("random", "non-query positions: blank (token 0) or random tokens", choices=FILLERS)
    filler_may_collide: bool = param(False, "random filler may equal one of the example's keys")
    filler_tokens: int = param(0, "random filler from the vocabulary's top filler_tokens ids, which keys and "
                                  "values then avoid (0: filler as `filler` says)", added=True)

    def __post_init__(self):
        super().__post_init__()
        check_choices(self)
        require(self.filler_tokens >= 0, f"filler_tokens must be non-negative, got {self.filler_tokens}")
        require(self.filler_tokens == 0 or (self.filler == "random" and not self.filler_may_collide),
                f"filler_tokens={self.filler_tokens} draws random filler from its own tokens: it needs "
                f"filler='random' and filler_may_collide=False, got filler={self.filler!r}, "
                f"filler_may_collide={self.filler_may_collide}")
        n, v, length = self.num_kv_pairs, self.vocab_size - self.filler_tokens, self.seq_len
        require(n >= 1, f"num_kv_pairs must be at least 1, got {n}")
        name = "vocab_size - filler_tokens" if self.filler_tokens else "vocab_size"  # what keys and values share
        require(v >= 4, f"{name} must be at least 4, got {v}")
        require(n <= v // 2 - 1, f"num_kv_pairs={n} distinct keys need {name} >= {2 * (n + 1)} "
                                 f"(keys come from 1..({name})/2-1), got {name}={v}")
        require(n <= v - v // 2, f"num_kv_pairs={n} distinct values need {name} >= {2 * n}, got {v}")
        require(4 * n <= length, f"num_kv_pairs={n} pairs and their queries need seq_len >= 4*num_kv_pairs "
                                 f"= {4 * n}, got seq_len={length}")
        require(self.power_a > 0, f"power_a must be positive, got {self.power_a}")


def _query_slots(num_slots: int, count: int, power_a: float, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Slots drawn without replacement with p(g) ∝ (g+1)^(a-1) (Gumbel top-k)."""
    device = generator.device
    log_p = (power_a - 1.0) * torch.log(torch.arange(1, num_slots + 1, device=device, dtype=torch.float64))
    uniform = torch.rand(batch, num_slots, generator=generator, device=device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
    return (log_p + gumbel).topk(count, dim=1).indices  # (batch, count)


def generate(config: MQARConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device = generator.device
    n, batch = config.num_kv_pairs, num_examples
    pair_vocab = config.vocab_size - config.filler_tokens  # keys and values below it, own filler above
    key_vocab = pair_vocab // 2
    keys = distinct(1, key_vocab, n, batch, generator)  # (B, N)
    values = distinct(key_vocab, pair_vocab, n, batch, generator)  # (B, N)
    context = 2 * n
    slots = _query_slots((config.seq_len - context) // 2, n, config.power_a, batch, generator)  # (B, N)
    query_pos = context + 2 * slots  # (B, N)

    inputs = torch.zeros(batch, config.seq_len, dtype=torch.long, device=device)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    inputs.scatter_(1, query_pos, keys)
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels.scatter_(1, query_pos, values)

    if config.filler == "random":
        is_filler = torch.ones_like(inputs, dtype=torch.bool)
        is_filler[:, :context] = False
        is_filler.scatter_(1, query_pos, False)
        tokens = (torch.randint(pair_vocab, config.vocab_size, inputs.shape, generator=generator, device=device)
                  if config.filler_tokens else filler(config, keys, inputs.shape, generator))
        inputs = torch.where(is_filler, tokens, inputs)
    return inputs, labels


def chance(config: MQARConfig) -> float:
    """A uniform pick among the example's ``N`` values (the plateau before recall forms: loss ~ ln N)."""
    return 1.0 / config.num_kv_pairs


register(Task(
    name="mqar",
    chance=chance,
    config=MQARConfig,
    generate=generate,
    summary="multi-query associative recall (Zoology layout)",
))
