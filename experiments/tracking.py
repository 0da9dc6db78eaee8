"""Live tracking of a run: each evaluation's point sent to TensorBoard or Weights & Biases as it happens.

    python -m experiments.run --task mqar --log tensorboard     # then: tensorboard --logdir results/tensorboard
    python -m experiments.sweep mqar_pairs --csv x.csv --log wandb

TensorBoard event files go to ``<results>/tensorboard/[<sweep>/]<run_id>/``
(one folder per run, a sweep's runs grouped under its name). W&B runs are
named by their run id and grouped by sweep, in offline mode unless the user
has set ``WANDB_MODE`` (``wandb sync`` uploads them later). Neither is
needed by ``make all``; each is an extra (``pip install
'attention-normalisation[tensorboard]'`` or ``[wandb]``), and asking for one
that is not installed is one line naming the extra. Every number of an
evaluation point is logged under its own name (loss, accuracy, learning
rate, gradient norm, the probes), at its step.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.config import ConfigError

KINDS = ("none", "tensorboard", "wandb")
EXTRA_MODULE = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_available(kind: str) -> None:
    """ConfigError (one line naming the extra to install) if ``kind`` is unknown or its library is missing."""
    if kind not in KINDS:
        raise ConfigError(f"unknown --log {kind!r}; valid choices are {list(KINDS)}")
    if kind != "none" and importlib.util.find_spec(EXTRA_MODULE[kind]) is None:
        raise ConfigError(f"--log {kind} needs the {kind} package: pip install 'attention-normalisation[{kind}]'")


def log_folder(root: str | os.PathLike, run_id: str, sweep: str | None) -> Path:
    """Where a run's TensorBoard events go, refused (ConfigError) if any part of it is a link or leads out of
    the results folder ``root``."""
    base = Path(root).resolve()
    folder = Path(root) / "tensorboard" / (sweep or "") / run_id
    current = Path(root)
    for part in folder.relative_to(root).parts:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.resolve().is_relative_to(base)):
            raise ConfigError(f"log folder {current} is a link or leads outside the results folder {root}")
    return folder


def numbers(point: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The point's numbers by name, nested ones dotted and lists by index (``output_ratio.0``); no step."""
    out: dict[str, float] = {}
    for name, value in point.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(numbers(value, key + "."))
        elif isinstance(value, list):
            out.update(numbers({str(i): v for i, v in enumerate(value)}, key + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
            out[key] = float(value)
    return out


class Tracker:
    """A callable ``tracker(point)`` for :func:`experiments.train.train`'s ``log``; ``close()`` when done."""

    def __init__(self, kind: str, *, root: str | os.PathLike, run_id: str, sweep: str | None = None,
                 config: dict[str, Any] | None = None):
        check_available(kind)
        self.kind = kind
        self._write, self._close = _open(kind, root, run_id, sweep, config or {})

    def __call__(self, point: dict[str, Any]) -> None:
        self._write(int(point["step"]), numbers(point))

    def close(self) -> None:
        self._close()


def _open(kind: str, root, run_id: str, sweep: str | None,
          config: dict[str, Any]) -> tuple[Callable[[int, dict[str, float]], None], Callable[[], None]]:
    if kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_folder(root, run_id, sweep)))
        return (lambda step, values: [writer.add_scalar(n, v, step) for n, v in values.items()]), writer.close
    if kind == "wandb":
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")  # nothing leaves the machine unless the user says so
        handle = wandb.init(name=run_id, group=sweep, config=config, dir=str(Path(root)), reinit=True)
        return (lambda step, values: handle.log(values, step=step)), handle.finish
    return (lambda step, values: None), (lambda: None)
