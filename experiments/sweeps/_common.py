"""Helpers the sweep modules share."""

from __future__ import annotations

from typing import Any

import synthetic
from experiments import attention
from experiments.model import ModelConfig
from experiments.runs import RunConfig
from experiments.train import TrainConfig


def run(task: tuple[str, dict[str, Any]], variant: str | tuple[str, dict[str, Any]], *, seed: int,
        train: dict[str, Any], **model: Any) -> RunConfig:
    """One RunConfig from ``(task name, knobs)``, a variant name or ``(name, params)``, and model fields."""
    name, params = (variant, {}) if isinstance(variant, str) else variant
    return RunConfig(
        task=synthetic.make_config(task[0], **task[1]),
        model=ModelConfig(**model, attention=attention.make_config(name, **params)),
        train=TrainConfig(**train, seed=seed),
    )
