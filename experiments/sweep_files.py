"""Sweep files: JSON that lays a grid of dotted fields over a base run config, read into checked configs.

Every value is type-checked by the config dataclasses it lands in, an error
names it by its dotted path, and a file of more than :data:`MAX_RUNS` runs
needs ``--allow-large``; :func:`iter_file_configs` yields the configs one at a
time, so listing or counting a sweep of millions of runs takes constant memory.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiments.config import ConfigError
from experiments.runs import RunConfig


def distinct(configs: list[RunConfig], where: str) -> list[RunConfig]:
    keys = [c.key() for c in configs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where} lists the same config twice")
    return configs


SWEEP_FILE_KEYS = ("base", "grid", "runs")


def set_dotted(data: dict[str, Any], path: str, value: Any, where: str) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: {path!r} goes through {part!r}, which is not a section")
    data[leaf] = value


MAX_RUNS = 10_000  # a sweep file larger than this is more likely a typo than a plan


def file_configs(path: str | os.PathLike, allow_large: bool = False) -> list[RunConfig]:
    """The configs of a sweep file: JSON with ``base`` (a partial run config), and ``grid``
    (dotted field -> list of values, crossed) and/or ``runs`` (a list of partial configs
    laid over ``base``)::

        {"base": {"task": {"name": "mqar", "num_kv_pairs": 2}, "train": {"steps": 200}},
         "grid": {"model.attention.name": ["softmax", "linear"], "train.seed": [0, 1]}}
    """
    return distinct(list(iter_file_configs(path, allow_large)), f"sweep file {path}")


def iter_file_configs(path: str | os.PathLike, allow_large: bool = False) -> Iterator[RunConfig]:
    """The configs of a sweep file one at a time (see :func:`file_configs`), in constant memory.

    The file's shape and size are checked before the first config is yielded;
    each config is validated as it is built.
    """
    where = f"sweep file {path}"
    spec = _read(Path(path), where)
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must hold a JSON object with keys {list(SWEEP_FILE_KEYS)}")
    unknown = sorted(set(spec) - set(SWEEP_FILE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {list(SWEEP_FILE_KEYS)}")
    base, grid, overlays = spec.get("base", {}), spec.get("grid", {}), spec.get("runs", [{}])
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ConfigError(f"{where}: 'base' and 'grid' must be JSON objects")
    if not isinstance(overlays, list) or not overlays or not all(isinstance(o, dict) for o in overlays):
        raise ConfigError(f"{where}: 'runs' must be a non-empty list of JSON objects")
    if "grid" in spec and not grid:
        raise ConfigError(f"{where}: 'grid' is empty; give each field to cross a list of values, or leave 'grid' out")
    for field, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid values of {field!r} must be a non-empty list, got {values!r}")
    size = len(overlays) * math.prod(len(values) for values in grid.values())
    if size > MAX_RUNS and not allow_large:
        raise ConfigError(f"{where}: {size} runs; more than {MAX_RUNS} needs --allow-large")
    return _build(base, grid, overlays, where)


MAX_FILE_BYTES = 16 * 2**20  # a sweep file is a few lines; far more is a wrong file


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    repeated = sorted(k for k, n in collections.Counter(k for k, _ in pairs).items() if n > 1)
    if repeated:
        raise ConfigError(f"key(s) {repeated} given twice in one object (JSON would keep only the last)")
    return dict(pairs)


def _read(path: Path, where: str) -> Any:
    """The file's JSON: a plain file of at most :data:`MAX_FILE_BYTES`, UTF-8, each key once per object."""
    try:
        if not path.exists():
            raise ConfigError(f"{where}: cannot be read (no such file)")
        if not path.is_file():
            raise ConfigError(f"{where}: cannot be read as a sweep file (not a plain file)")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{where}: {path.stat().st_size} bytes, more than the {MAX_FILE_BYTES} a sweep file may")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{where}: cannot be read ({error.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested deeper than a sweep file can be") from None
    except ValueError as error:  # JSONDecodeError, and an integer of more digits than Python converts
        raise ConfigError(f"{where}: not valid JSON ({str(error)[:200]})") from None


def _build(base: dict[str, Any], grid: dict[str, list], overlays: list[dict], where: str) -> Iterator[RunConfig]:
    for overlay in overlays:
        for values in itertools.product(*grid.values()):
            data = copy.deepcopy(base)
            for field, value in _flat_items(overlay):
                set_dotted(data, field, copy.deepcopy(value), where)
            for field, value in zip(grid, values):
                set_dotted(data, field, value, where)
            if "task" not in data:
                raise ConfigError(f"{where}: every run needs a task (set base.task.name)")
            try:
                yield RunConfig.from_dict(data)
            except ConfigError as error:
                raise ConfigError(f"{where}: {error}") from None


def _flat_items(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            items += _flat_items(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items
