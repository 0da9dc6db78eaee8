"""Every config of the ``deep`` and ``full`` profiles builds, takes one training step and evaluates, at batch 1
on the CPU: a shape and validation check at the real lengths and widths, so that a long run (or a GPU run)
cannot fail on a config. Configs that differ only in what one step cannot tell apart (seed, learning rate,
step counts, the test set's size) are checked once."""

from __future__ import annotations

import dataclasses
import math

import pytest

from experiments import sweeps
from experiments.runs import RunConfig, check_compatible, check_fits
from experiments.train import train

LONG_PROFILES = ("deep", "full")


def one_step(config: RunConfig) -> RunConfig:
    """``config`` cut to one step at batch 1 on the CPU, with a one-example test set; its shapes unchanged."""
    task = dataclasses.replace(config.task, num_test_examples=1)
    schedule = dict(steps=1, batch_size=1, warmup_steps=0, eval_every=1, target_accuracy=0.0, seed=0, lr=1e-3,
                    device="cpu", compile="none")
    schedule = {k: v for k, v in schedule.items() if hasattr(config.train, k)}
    return RunConfig(task=task, model=config.model, train=dataclasses.replace(config.train, **schedule))


def shapes() -> list[RunConfig]:
    """One config per distinct shape over every sweep's long profiles."""
    seen: dict[str, RunConfig] = {}
    for name in sweeps.names():
        module = sweeps.load(name)
        for profile in LONG_PROFILES:
            if profile in module.PROFILES:
                for config in sweeps.configs(name, profile):
                    cut = one_step(config)
                    seen.setdefault(cut.key(), cut)
    return list(seen.values())


SHAPES = shapes()


def test_every_sweep_has_a_deep_and_a_full_profile():
    missing = [(name, p) for name in sweeps.names() for p in LONG_PROFILES if p not in sweeps.load(name).PROFILES]
    assert not missing, missing


@pytest.mark.parametrize("config", SHAPES, ids=lambda c: c.run_id())
def test_a_long_profile_config_trains_one_step_and_evaluates(config):
    check_compatible(config)
    check_fits(config)
    result = train(config.task, config.model, config.train, progress=False)
    assert result["status"] == "finished" and result["steps_run"] == 1
    assert math.isfinite(result["final"]["test_loss"]) and 0.0 <= result["final"]["test_accuracy"] <= 1.0
    assert all(str(n) in result["final"]["length_accuracy"] for n in config.train.test_lengths)
