"""Long-range retrieval: a key-value needle in a haystack, queried at the end (passkey retrieval).

Token ranges are disjoint, so nothing collides by construction: filler tokens
``FIRST_FILLER .. V/2 - 1`` (the haystack, uniform random), keys from the
upper half's first quarter and values from the rest of the upper half. An
example hides ``1 + num_distractors`` needles ``k v`` (distinct keys) in the
filler; the first needle (the target) starts at a position set by ``depth``
(a fraction of the haystack, or ``None`` for a uniform depth); distractors go
to other, non-overlapping places. The last ``num_queries`` positions ask
keys: the target's key first, then distractors' keys (so ``num_queries <=
1 + num_distractors``); the label at each is the key's value.

Worked example (seq_len=12, one needle k=40 v=55 at depth 0.25, no
distractors, one query; filler shown as f)::

    position  0  1  2   3  4  5  6  7  8  9  10  11
    input     f  f  40 55  f  f  f  f  f  f  f   40
    label     .  .  .   .  .  .  .  .  .  .  .   55     (. = -100)

Generation is vectorised (one ``topk`` over slots), so lengths of several
thousand tokens are cheap. Constraints: the needles and queries must fit
(``2 (1 + num_distractors) + num_queries <= seq_len``) and the key range
must hold ``1 + num_distractors`` distinct keys.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.config import param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register

FIRST_FILLER = 1  # 0 is kept free (unused), as a pad for callers that need one


def _ranges(vocab_size: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    half = vocab_size // 2
    key_end = half + (vocab_size - half) // 4
    return (FIRST_FILLER, half), (half, key_end), (key_end, vocab_size)


@dataclasses.dataclass(frozen=True)
class NeedleConfig(TaskConfig):
    vocab_size: int = param(256, "vocabulary: filler below V/2, keys and values above, disjoint")
    seq_len: int = param(256, "tokens per example (haystack + queries)")
    depth: float | None = param(None, "target needle position as a fraction of the haystack; None: uniform")
    num_distractors: int = param(0, "other needles (different keys) hidden in the haystack")
    num_queries: int = param(1, "keys asked at the end: the target's, then distractors'")

    def __post_init__(self):
        super().__post_init__()
        (f0, f1), (k0, k1), (v0, v1) = _ranges(self.vocab_size)
        require(f1 > f0 and k1 > k0 and v1 > v0, f"vocab_size={self.vocab_size} leaves an empty filler, key or "
                                                 f"value range; use at least 16")
        needles = 1 + self.num_distractors
        require(self.num_distractors >= 0, f"num_distractors must be non-negative, got {self.num_distractors}")
        require(k1 - k0 >= needles, f"{needles} needles need {needles} distinct keys; vocab_size={self.vocab_size} "
                                    f"gives {k1 - k0}")
        require(1 <= self.num_queries <= needles,
                f"num_queries must be in [1, 1 + num_distractors = {needles}], got {self.num_queries}")
        require(2 * needles + self.num_queries <= self.seq_len,
                f"{needles} needles and {self.num_queries} queries need seq_len >= {2 * needles + self.num_queries}, "
                f"got {self.seq_len}")
        require(self.depth is None or 0.0 <= self.depth <= 1.0, f"depth must be in [0, 1] or None, got {self.depth}")


def generate(config: NeedleConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, batch = generator.device, num_examples
    (f0, f1), (k0, k1), (v0, v1) = _ranges(config.vocab_size)
    needles, queries = 1 + config.num_distractors, config.num_queries
    haystack = config.seq_len - queries
    slots = haystack // 2  # a needle occupies slot g = positions 2g, 2g+1 (odd haystacks leave one spare)
    if config.depth is None:
        target_slot = torch.randint(slots, (batch, 1), generator=generator, device=device)
    else:
        target_slot = torch.full((batch, 1), min(int(config.depth * slots), slots - 1), device=device)
    # distractors: distinct slots other than the target's
    noise = torch.rand(batch, slots, generator=generator, device=device)
    noise.scatter_(1, target_slot, -1.0)
    other_slots = noise.topk(needles - 1, dim=1).indices  # (B, needles - 1)
    needle_slots = torch.cat([target_slot, other_slots], dim=1)  # (B, needles), target first
    keys = torch.rand(batch, k1 - k0, generator=generator, device=device).topk(needles, dim=1).indices + k0
    values = torch.randint(v0, v1, (batch, needles), generator=generator, device=device)

    inputs = torch.randint(f0, f1, (batch, config.seq_len), generator=generator, device=device)
    inputs.scatter_(1, 2 * needle_slots, keys)
    inputs.scatter_(1, 2 * needle_slots + 1, values)
    inputs[:, haystack:] = keys[:, :queries]
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[:, haystack:] = values[:, :queries]
    return inputs, labels


def slices(config: NeedleConfig, batch):
    """Depth of the target needle as a fraction of the haystack, in tenths (0..9)."""
    inputs, _ = batch
    haystack = config.seq_len - config.num_queries
    target = (inputs[:, :haystack] == inputs[:, haystack:haystack + 1]).long().argmax(dim=1)
    return {"depth_decile": (10 * target // haystack).clamp(max=9)}


def chance(config: NeedleConfig) -> float:
    """A uniform pick among the values of the example's needles, or among all values with a single needle.

    With distractors, a model that finds the needles but not the one asked
    picks among ``1 + num_distractors`` values; with one needle, finding it
    is the whole task, so chance is a guess from the value range.
    """
    if config.num_distractors > 0:
        return 1.0 / (1 + config.num_distractors)
    low, high = _ranges(config.vocab_size)[2]
    return 1.0 / (high - low)


register(Task(name="needle", config=NeedleConfig, generate=generate, slices=slices, chance=chance,
              summary="needle-in-a-haystack / passkey retrieval with distractors"))
