"""Frozen, validated configuration dataclasses and the helpers they share.

Every component (attention variant, task, model, trainer) owns a frozen
dataclass of its hyper-parameters. Each field carries its help text in
``metadata["help"]``, which the command line reads, so a new field documents
itself. Construction validates; an unknown key or an impossible value raises
:class:`ConfigError` naming the problem and the valid choices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot be built; the message names the constraint."""


def param(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A dataclass field with its help text (and valid choices) attached."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


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


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass (annotations are strings here)."""
    return typing.get_type_hints(cls)


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build ``cls`` from a mapping; unknown keys are an error, never dropped."""
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(
            f"{cls.__name__}: unknown key(s) {unknown}; valid keys are {valid}"
        )
    return cls(**data)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal configs give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (hex)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()
