"""Frozen, validated configuration dataclasses and the helpers they share.

Every component (attention variant, task, model, trainer) owns a frozen
dataclass of its hyper-parameters. Each field carries its help text in
``metadata["help"]``, which the command line reads, so a new field documents
itself. Construction validates; an unknown key or an impossible value raises
:class:`ConfigError` naming the problem and the valid choices.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot be built; the message names the constraint."""


def param(default: Any, help: str, choices: tuple | None = None, *, added: bool = False) -> Any:
    """A dataclass field with its help text (and valid choices) attached.

    ``added`` marks a field added after results were cached: :func:`to_dict`
    leaves it out while it holds its default, so every earlier config keeps its
    dict and its cache key (a result key that changed would orphan its result).
    """
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if added:
        metadata["added"] = True
    return dataclasses.field(default=default, metadata=metadata)


def to_dict(config: Any) -> dict[str, Any]:
    """A flat config's fields as a dict (what results store and keys hash); ``added`` fields at their
    default are left out (see :func:`param`), and tuples become lists, as JSON reads them back."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("added") and value == f.default:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_choices(config: Any) -> None:
    """Validate every field that declares ``choices`` in its metadata."""
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{type(config).__name__}.{f.name}={value!r} is not valid; "
                f"choose from {list(choices)}"
            )


MAX_MAGNITUDE = 10**9  # no knob takes a value beyond this (an int past it would hang or exhaust memory first)


def _allowed(hint: Any) -> tuple[tuple[type, ...], bool]:
    """The scalar types a field annotation admits, and whether it admits None."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return tuple(o for o in options if o is not type(None)), type(None) in options


def check_values(config: Any, where: str, values: Mapping[str, Any] | None = None) -> None:
    """Every scalar field has its annotated type and, if a number, is finite and at most 1e9 in size.

    ``config`` is a config instance, or a config class with the ``values``
    about to build it (so a wrong type is reported before ``__post_init__``
    compares it with anything). ``where`` names the config in the message
    (``train``, ``task``, ...). A bool is not an int here and a string is not a
    number, so a sweep file's ``"steps": "5"`` or ``true`` is an error, not
    one step. Fields of other kinds (nested configs) are left to their own checks.
    """
    cls = config if isinstance(config, type) else type(config)
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        if values is not None and f.name not in values:
            continue  # the default: valid by construction
        value = values[f.name] if values is not None else getattr(config, f.name)
        kinds, optional = _allowed(hints[f.name])
        if not kinds or not all(k in (int, float, bool, str) for k in kinds):
            continue
        name = f"{where}.{f.name}"
        if value is None:
            require(optional, f"{name} must be set, got None")
            continue
        if isinstance(value, bool):
            require(bool in kinds, f"{name} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
            continue
        if isinstance(value, int) and (int in kinds or float in kinds) or isinstance(value, float) and float in kinds:
            require(not isinstance(value, float) or math.isfinite(value), f"{name} must be finite, got {value!r}")
            require(abs(value) <= MAX_MAGNITUDE, f"{name}={value!r} is out of range (|value| <= {MAX_MAGNITUDE:g})")
            continue
        require(isinstance(value, str) and str in kinds,
                f"{name} must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__} {value!r}")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass (annotations are strings here); once per class."""
    return typing.get_type_hints(cls)


def from_dict(cls: type, data: Mapping[str, Any], where: str | None = None) -> Any:
    """Build ``cls`` from a mapping; unknown keys are an error, never dropped.

    ``where`` is the dotted path of this config in a run (``train``,
    ``model.attention``), so a message names the value as a sweep file spells it.
    """
    where = where or cls.__name__
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {valid}")
    check_values(cls, where, data)
    return cls(**data)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal configs give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (hex)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()
