"""Registry of synthetic tasks.

A task module registers a :class:`Task`: a frozen config class and a pure
``generate(config, num_examples, generator, *, split) -> batch`` that draws a
batch on the generator's device (``split`` is ``"train"`` or ``"test"``, for
tasks whose test distribution differs, such as length generalisation).

- ``kind="lm"`` (decoder-only): ``batch = (inputs, labels)``, both
  ``(B, seq_len)`` int64, labels ``-100`` where nothing is asked.
- ``kind="seq2seq"`` (encoder-decoder): ``batch = (source, inputs, labels,
  alignment)`` with ``source`` ``(B, S)``, decoder ``inputs``/``labels``
  ``(B, T)`` and the gold alignment ``(B, T, S)`` bool (sure links: label
  position ``t`` is aligned to source position ``s``).

``slices(config, batch) -> {name: (B,) tensor}`` (optional) names per-example
properties (copy length, needle depth, ...) that metrics are broken down by.

``chance(config) -> float`` (required) is the token accuracy a model reaches
without solving the task: the best guess that ignores what the task is
about (for recall, a uniform pick among the values present in the example).
``ceiling(config) -> float`` (optional; 1 if absent) is the best accuracy
any model can reach, for a task whose labels are partly random draws. A
trained run *learned* when its test accuracy clears :func:`learned_threshold`,
halfway from chance to the ceiling: no run at chance, nor one that has only
found the guess, counts as evidence for a claim.

``active_rows(config, batch) -> (B, T) bool`` (optional) marks the positions
whose label needs attention to another token; the other rows are the ones
where a head has nothing to do (its *dormant* rows), which the attention-sink
probe reads (:func:`experiments.metrics.sink_statistics`).
Modules are discovered automatically; helpers live in ``_``-prefixed modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from experiments.config import param, require
from experiments.registry import Registry

IGNORE_INDEX = -100


KINDS = ("lm", "seq2seq")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """The fields every task's config has: the fixed test set a run is judged on (:func:`test_set`). A task's
    config is a frozen dataclass that subclasses this and calls ``super().__post_init__()``."""

    num_test_examples: int = param(1000, "size of the fixed test set")
    test_seed: int = param(1_000_003, "seed of the fixed test set")

    def __post_init__(self):
        require(self.num_test_examples >= 1, f"num_test_examples must be at least 1, got {self.num_test_examples}")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    config: type[TaskConfig]  # with vocab_size and seq_len besides the test set's fields
    generate: Callable[..., tuple[torch.Tensor, ...]]  # (config, num_examples, generator, *, split)
    summary: str
    kind: str = "lm"
    slices: Callable[[Any, tuple[torch.Tensor, ...]], dict[str, torch.Tensor]] | None = None
    chance: Callable[[Any], float] | None = None  # required: see the module docstring
    # seq2seq, optional: (config, batch) -> (B, T, S) possible gold links beside the batch's sure ones, or None
    possible_links: Callable[[Any, tuple[torch.Tensor, ...]], torch.Tensor | None] | None = None
    ceiling: Callable[[Any], float] | None = None  # optional: the best accuracy possible, if below 1
    active_rows: Callable[[Any, tuple[torch.Tensor, ...]], torch.Tensor] | None = None  # optional: see above


_TASKS: Registry[Task] = Registry("task", "task")
names = _TASKS.names
get = _TASKS.get
name_of = _TASKS.name_of
make_config = _TASKS.make_config
config_to_dict = _TASKS.config_to_dict
config_from_dict = _TASKS.config_from_dict


def register(task: Task) -> Task:
    if not (isinstance(task.config, type) and issubclass(task.config, TaskConfig)):
        raise ValueError(f"task {task.name!r}: its config must subclass synthetic.TaskConfig, got {task.config!r}")
    if task.kind not in KINDS:
        raise ValueError(f"task kind {task.kind!r} is not one of {list(KINDS)}")
    if task.chance is None:
        raise ValueError(f"task {task.name!r} must state its chance level (Task.chance)")
    return _TASKS.register(task)


def kind_of(config: Any) -> str:
    return get(name_of(config)).kind


def generate(config: Any, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    """A batch (see the module docstring for its layout per task kind)."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    return get(name_of(config)).generate(config, num_examples, generator, split=split)


def slices(config: Any, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Per-example slice values of a batch (empty if the task defines none)."""
    fn = get(name_of(config)).slices
    return fn(config, batch) if fn is not None else {}


def possible_links(config: Any, batch: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
    """A seq2seq batch's possible gold links beside its sure ones (None if the task marks none)."""
    fn = get(name_of(config)).possible_links
    return fn(config, batch) if fn is not None else None


LEARNED_FRACTION = 0.5  # a run learned when it covers this fraction of the way from chance to 1


def chance(config: Any) -> float:
    """Token accuracy without solving the task (see the module docstring)."""
    return float(get(name_of(config)).chance(config))


def ceiling(config: Any) -> float:
    """The best token accuracy any model can reach: 1 unless the task states less."""
    fn = get(name_of(config)).ceiling
    return float(fn(config)) if fn is not None else 1.0


def learned_threshold(config: Any) -> float:
    """Test accuracy a run must reach to count as having learned: halfway from chance to the ceiling."""
    level = chance(config)
    return level + LEARNED_FRACTION * (ceiling(config) - level)


def active_rows(config: Any, batch: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
    """``(B, T)`` bool: the positions whose label needs attention (None if the task marks none)."""
    fn = get(name_of(config)).active_rows
    return fn(config, batch) if fn is not None else None


def test_set(config: Any, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """The fixed test set: ``num_test_examples`` drawn from the task's own ``test_seed``."""
    generator = torch.Generator(device=device).manual_seed(config.test_seed)
    return generate(config, config.num_test_examples, generator, split="test")


def tensor_hash(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' bytes: recorded in results to pin the test set."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
        digest.update(str(tuple(tensor.shape)).encode())
    return digest.hexdigest()


_TASKS.discover(__name__, __path__)
