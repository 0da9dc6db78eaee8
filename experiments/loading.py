"""A finished run loaded back: its config and its model with the kept weights, in eval mode.

    >>> from experiments import load_run
    >>> config, model = load_run("results/mqar/0123456789abcdef.json")   # or its key, or the key's start
    >>> config, model = load_run("0123abcd", results_dir="results")

The result is read and checked as the cache reads it, and the weights file
is the one the result names (size and SHA-256, :func:`experiments.weights.verify`),
with the names, shapes and dtypes of the model the config builds; anything
else is refused with :class:`~experiments.weights.WeightsError`, one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_tensors

from experiments import cache, untrusted
from experiments.cache import checked_result, result_path
from experiments.runs import RunConfig
from experiments.train import build_model
from experiments.weights import SUFFIX, WeightsError, verify

KEY_CHARACTERS = frozenset("0123456789abcdef")


def load_run(run: str | os.PathLike, results_dir: str | os.PathLike | None = None) -> tuple[RunConfig, Any]:
    """``(config, model)`` of a finished run: ``run`` is its result file or its key (or the key's first
    characters) in ``results_dir`` (default ``$RESULTS_DIR`` or ``results/``); the model is built from the
    config, given the kept weights (names, shapes and dtypes checked against the config's model) and put in
    eval mode."""
    root = cache.results_dir(results_dir)
    config, result = find_run(run, root)
    data = verify(result, result_path(config, root).with_suffix(SUFFIX), root)
    try:
        tensors = load_tensors(data)
    except Exception as error:  # safetensors raises its own error type for a malformed header
        raise WeightsError(f"weights of {config.run_id()} are not a safetensors file "
                           f"({str(error)[:100]})") from None
    model = build_model(config.task, config.model)
    expected = {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    found = {name: (tuple(t.shape), t.dtype) for name, t in tensors.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(n for n in found if found[n] != expected[n])
        raise WeightsError(f"weights of {config.run_id()} do not match its config's model (e.g. {wrong[:3]})")
    model.load_state_dict(tensors, strict=True)
    return config, model.eval()


def find_run(run: str | os.PathLike, root: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The config and checked result of ``run`` (a result file inside ``root``, or a key or key prefix)."""
    text = os.fspath(run)
    if text.endswith(".json"):
        paths = [Path(text)]
    else:
        if not text or not set(text) <= KEY_CHARACTERS:
            raise WeightsError(f"{text!r} is neither a result file (.json) nor a run key (hexadecimal)")
        paths = sorted(p for p in root.glob(f"*/{text[:16]}*.json") if not p.name.endswith(".failed.json"))
        if not paths:
            raise WeightsError(f"no result in {root} has a key starting with {text!r}")
        if len(paths) > 1:
            raise WeightsError(f"{len(paths)} results in {root} have keys starting with {text!r}; give more of it")
    try:
        config = config_named_by(paths[0], root)
    except ValueError as error:
        raise WeightsError(f"{paths[0]} {error}") from None
    try:
        return config, checked_result(config, root)
    except WeightsError:
        raise
    except (OSError, ValueError) as error:
        raise WeightsError(f"{paths[0]} is not a result ({str(error)[:200]})") from None


def config_named_by(path: Path, root: Path) -> RunConfig:
    """The run config a result file names. ValueError (one line, to follow the file's name) unless ``path``
    inside ``root`` holds a JSON object naming a valid config whose result lives at ``path``."""
    try:
        data = untrusted.read_json(path, root=root)
        config = RunConfig.from_dict(data.get("config") if isinstance(data, dict) else None)
    except (ValueError, TypeError, KeyError) as error:  # Untrusted and ConfigError are ValueErrors
        raise ValueError(f"is not a result ({str(error)[:200]})") from None
    if result_path(config, root).resolve() != Path(path).resolve():
        raise ValueError(f"holds the result of a config whose place is {result_path(config, root)}")
    return config
