"""A results folder as a table: one row per cached run, in pandas.

    >>> from experiments import results
    >>> runs = results.load("results", task="mqar")                       # every MQAR run of the folder
    >>> pairs = results.load("results", sweep="mqar_pairs", profile="quick")  # one sweep's runs, as its CSV
    >>> curves = results.load("results", sweep="mqar_pairs", curves=True)  # run_id, step, metric, value
    >>> pairs.groupby(["model.attention.name", "task.num_kv_pairs"])["test_accuracy"].mean()

A row has the columns of a sweep CSV (:func:`experiments.sweep.run_row`):
the flattened config with dotted names, the status, the final metrics, the
chance level, ceiling and learned gate, the analyses and probes, the device
and the time. Every file is read as the cache reads it
(:func:`experiments.cache.load_result`): a file that is not a result of the
config it names (malformed, truncated, another run's, a link out of the
folder, a FIFO, a huge file) is set aside to ``<name>.corrupt-<time>`` with
one warning and left out, never loaded silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

import synthetic
from experiments import sweeps
from experiments.atomic import quarantine
from experiments.cache import load_result, result_path, results_dir
from experiments.config import ConfigError
from experiments.loading import config_named_by
from experiments.runs import RunConfig
from experiments.sweep import run_row

CURVE_COLUMNS = ("run_id", "step", "metric", "value")


def load(root: str | os.PathLike | None = None, *, task: str | None = None, sweep: str | None = None,
         profile: str = "quick", curves: bool = False) -> pd.DataFrame:
    """Every run of the results folder ``root`` (default ``$RESULTS_DIR`` or ``results/``) as one row; with
    ``task``, that task's runs; with ``sweep``, the runs of that sweep at ``profile`` that have a result.
    ``curves=True`` gives the long form instead: one row per run, evaluation step and metric."""
    if task is not None and task not in synthetic.names():
        raise ConfigError(f"unknown task {task!r}; valid names are {synthetic.names()}")
    found = list(_sweep_runs(root, sweep, profile) if sweep is not None else _folder_runs(root, task))
    if task is not None:
        found = [(config, result) for config, result in found if config.task_name == task]
    if curves:
        return pd.DataFrame([point for config, result in found for point in _curve(config, result)],
                            columns=list(CURVE_COLUMNS))
    rows = (_row(config, result, root, sweep=sweep, profile=profile if sweep else None) for config, result in found)
    return pd.DataFrame([row for row in rows if row is not None])


def _row(config: RunConfig, result: dict[str, Any], root, **names: Any) -> dict[str, Any] | None:
    """The run's row, or None after setting aside a result whose metrics are not of the shape a result's are
    (a planted ``final``: lists where numbers belong, a missing field)."""
    try:
        return run_row(config, result, **names)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        quarantine(result_path(config, root), f"is not a result (its metrics: {type(error).__name__}: "
                                              f"{str(error)[:120]})")
        return None


def _sweep_runs(root, sweep: str, profile: str) -> Iterator[tuple[RunConfig, dict[str, Any]]]:
    for config in sweeps.configs(sweep, profile):
        result = load_result(config, root)
        if result is not None:
            yield config, result


def _folder_runs(root, task: str | None) -> Iterator[tuple[RunConfig, dict[str, Any]]]:
    """Each result file under the registered tasks' folders, read and checked as the cache does."""
    base = results_dir(root)
    for name in [task] if task is not None else synthetic.names():
        folder = base / name
        if not folder.is_dir() or folder.is_symlink():  # a link could lead anywhere: not a task folder here
            continue
        for path in sorted(folder.glob("*.json")):
            if path.name.endswith(".failed.json"):
                continue
            config = _config_of(path, base)
            result = load_result(config, root) if config is not None else None
            if result is not None:
                yield config, result


def _config_of(path: Path, base: Path) -> RunConfig | None:
    """The run config a result file names, if the file is at that config's place; else set aside."""
    try:
        return config_named_by(path, base)
    except ValueError as error:
        quarantine(path, str(error))
        return None


def _curve(config: RunConfig, result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for point in result.get("curve", []):
        if not isinstance(point, dict) or not isinstance(point.get("step"), int):
            continue
        for metric, value in point.items():
            if metric != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                yield {"run_id": config.run_id(), "step": point["step"], "metric": metric, "value": float(value)}
