"""A training run's checkpoint: what it holds, how it is checked, saved and resumed.

A run given a checkpoint path (:func:`experiments.train.train`) saves there,
atomically, at every evaluation: the model, optimiser, schedule and
data-stream generator (:class:`TrainingObjects`) and how far the run has got
(:class:`TrainingState`: step, curve, loss spikes, the probes at
initialisation, the training time so far). A run that finds the file resumes
from it; on CPU the resumed run ends with the same result as an
uninterrupted one.

A checkpoint on disk is untrusted input. It is read as a plain, bounded file
and loaded with ``weights_only`` (tensors and plain types, so a planted pickle
cannot run code), then :func:`check` holds it against the run before any of
it is used. One that fails is set aside (``<name>.corrupt-<time>``) and the
run starts fresh.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from experiments import untrusted
from experiments.atomic import atomic_path, quarantine

FIELDS = frozenset({"model", "optimizer", "schedule", "stream", "curve", "step"})  # every checkpoint has these


class TrainingObjects(NamedTuple):
    """The objects a checkpoint restores, built from the run's seed by the caller."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    stream: torch.Generator  # the training batches' generator


@dataclasses.dataclass
class TrainingState:
    """How far a run has got; a fresh run starts from the defaults."""

    step: int = 0  # optimiser steps taken
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # one point per evaluation
    loss_spikes: int = 0
    output_ratio_at_init: list[float] = dataclasses.field(default_factory=list)
    null_rate_at_init: float | None = None
    sparsity_at_init: float | None = None
    earlier_seconds: float = 0.0  # training time before a resume, so a resumed run reports its whole time


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_progress(saved: dict[str, Any], steps: int) -> None:
    """The step, the curve and the counters: numbers, within the run, the curve ending at the step."""
    step = saved["step"]
    if not isinstance(step, int) or not 0 < step <= steps:
        raise ValueError(f"step {step!r} outside 1..{steps}")
    curve = saved["curve"]
    if not isinstance(curve, list) or not curve or not all(isinstance(p, dict) for p in curve):
        raise ValueError("curve is not a list of evaluations")
    curve_steps = [p.get("step") for p in curve]
    if not all(isinstance(s, int) for s in curve_steps) or curve_steps != sorted(set(curve_steps)) or \
            curve_steps[-1] != step:
        raise ValueError("curve steps are not increasing to the checkpoint's step")
    for point in curve:
        for value in point.values():
            values = value if isinstance(value, list) else [value]
            if not all(v is None or _number(v) for v in values):
                raise ValueError("curve holds a value that is not a number")
    for name, bound in (("loss_spikes", step), ("train_seconds", math.inf)):
        value = saved.get(name, 0)
        if not _number(value) or not 0 <= value <= bound:
            raise ValueError(f"{name} {value!r} out of range")
    at_init = saved.get("output_ratio_at_init", [])
    if not isinstance(at_init, list) or not all(_number(v) for v in at_init):
        raise ValueError("output_ratio_at_init is not a list of numbers")


def _check_optimizer(saved: dict[str, Any], optimizer: torch.optim.Optimizer, lr: float,
                     lr_at: Callable[[int], float]) -> None:
    """The schedule and the optimiser's rate at the checkpoint's step, and moments of the parameters' shapes."""
    step = saved["step"]
    schedule = saved["schedule"]
    if not isinstance(schedule, dict) or schedule.get("last_epoch") != step or \
            schedule.get("base_lrs") != [lr] * len(optimizer.param_groups):
        raise ValueError("the schedule is not this run's at the checkpoint's step")
    stored = saved["optimizer"]
    groups = stored.get("param_groups") if isinstance(stored, dict) else None
    expected_lr = lr_at(step)
    if not isinstance(groups, list) or not all(isinstance(g, dict) and _number(g.get("lr")) and
                                               math.isclose(g["lr"], expected_lr, rel_tol=1e-6) for g in groups):
        raise ValueError("the optimiser's rate is not this run's at the checkpoint's step")
    parameters = [p for g in optimizer.param_groups for p in g["params"]]  # the order state_dict numbers them
    state = stored.get("state")
    if not isinstance(state, dict) or set(state) - set(range(len(parameters))):
        raise ValueError("optimiser state of parameters this model does not have")
    for index, moments in state.items():
        if not isinstance(moments, dict):
            raise ValueError("optimiser state is not per-parameter moments")
        for name in ("exp_avg", "exp_avg_sq"):
            tensor = moments.get(name)
            if not isinstance(tensor, torch.Tensor) or tensor.shape != parameters[index].shape or \
                    not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"optimiser {name} of parameter {index} has the wrong shape or non-finite values")
        if float(moments.get("step", -1)) != step:
            raise ValueError(f"optimiser step of parameter {index} is not {step}")


def check(saved: Any, optimizer: torch.optim.Optimizer, *, steps: int, lr: float,
          lr_at: Callable[[int], float]) -> None:
    """Raise ValueError unless ``saved`` is a checkpoint this run could have written.

    That is: a step within the run's ``steps``, a curve of numbers that ends
    at that step, the schedule at that step and at this run's peak ``lr``, the
    optimiser's rate ``lr_at(step)``, and optimiser moments of the parameters'
    shapes (``load_state_dict`` checks the model's own shapes, not the
    optimiser's, and would take a planted step of 1e18 or a rate of 1e30).
    """
    if not isinstance(saved, dict) or not FIELDS <= set(saved):
        raise ValueError("not a checkpoint's fields")
    _check_progress(saved, steps)
    _check_optimizer(saved, optimizer, lr, lr_at)


def save(path: Path, objects: TrainingObjects, state: TrainingState, train_seconds: float) -> None:
    """Write the checkpoint atomically; ``train_seconds`` is the run's whole training time so far."""
    model, optimizer, schedule, stream = objects
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "stream": stream.get_state(),
                    "curve": state.curve, "step": state.step, "loss_spikes": state.loss_spikes,
                    "output_ratio_at_init": state.output_ratio_at_init,
                    "null_rate_at_init": state.null_rate_at_init, "sparsity_at_init": state.sparsity_at_init,
                    "train_seconds": train_seconds}, tmp)


def resume(path: Path, objects: TrainingObjects, device: torch.device, *, steps: int, lr: float,
           lr_at: Callable[[int], float]) -> TrainingState:
    """Load the checkpoint at ``path`` into ``objects`` and return its state; raises if it does not pass
    :func:`check` or does not load (``objects`` may then be partly loaded)."""
    model, optimizer, schedule, stream = objects
    # read as a plain, bounded file first: a FIFO or a link to /dev/zero there would hang torch.load
    limit = untrusted.MAX_BYTES + 64 * model.num_parameters()
    data = untrusted.read_bytes(path, root=path.parent, limit=limit)
    saved = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    check(saved, optimizer, steps=steps, lr=lr, lr_at=lr_at)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    stream.set_state(saved["stream"].to(stream.get_state().device))
    null_at_init, sparsity_at_init = saved.get("null_rate_at_init"), saved.get("sparsity_at_init")
    return TrainingState(step=int(saved["step"]), curve=list(saved["curve"]),
                         loss_spikes=int(saved.get("loss_spikes", 0)),
                         output_ratio_at_init=[float(r) for r in saved.get("output_ratio_at_init", [])],
                         null_rate_at_init=float(null_at_init) if null_at_init is not None else None,
                         sparsity_at_init=float(sparsity_at_init) if sparsity_at_init is not None else None,
                         earlier_seconds=float(saved.get("train_seconds", 0.0)))


def resume_or_start(path: Path | None, start: Callable[[], TrainingObjects], device: torch.device, *, steps: int,
                    lr: float, lr_at: Callable[[int], float]) -> tuple[TrainingObjects, TrainingState]:
    """The run's objects and state: resumed from the checkpoint at ``path`` if there is one that loads and
    passes :func:`check`, else fresh from ``start()``. A checkpoint that fails is set aside, and the objects
    are built again, since a failed load may have changed them."""
    objects = start()
    if path is None or not path.exists():
        return objects, TrainingState()
    try:
        return objects, resume(path, objects, device, steps=steps, lr=lr, lr_at=lr_at)
    except Exception as error:  # noqa: BLE001 - anything that does not load safely is set aside
        quarantine(path, f"does not load as a checkpoint of this run ({type(error).__name__})")
        return start(), TrainingState()
