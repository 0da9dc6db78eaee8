"""Registry of attention variants.

Each variant lives in one module of this package and registers a
:class:`Variant`: its functional core ``attend(q, k, v, *, causal, ...)`` on
``(batch, heads, time, head_dim)`` tensors, its ``weights(q, k, *, causal)``
(the full attention matrix, for analysis), a readable ``reference`` that tests
compare the fast path with, an ``nn.Module`` that owns the projections and any
output normalisation, and a frozen config. Modules are discovered
automatically, so adding a variant means adding one file; modules whose name
starts with an underscore hold shared helpers and are not variants.

    >>> from experiments import attention
    >>> "rela_g" in attention.names()
    True
    >>> cfg = attention.make_config("linear", form="recurrent")
    >>> module = attention.build_module(cfg, d_model=64, num_heads=2)
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

from experiments.attention._common import AttentionModule, Variant
from experiments.config import ConfigError, from_dict

__all__ = [
    "AttentionModule",
    "Variant",
    "accepted_params",
    "build_module",
    "config_from_dict",
    "config_to_dict",
    "get",
    "make_config",
    "name_of",
    "names",
    "register",
]

_REGISTRY: dict[str, Variant] = {}
_ALIASES: dict[str, str] = {}


def register(variant: Variant, *, aliases: tuple[str, ...] = ()) -> Variant:
    """Add a variant (and other names for it); a name used twice is an error."""
    for name in (variant.name, *aliases):
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"attention variant {name!r} is registered twice")
    _REGISTRY[variant.name] = variant
    _ALIASES.update({alias: variant.name for alias in aliases})
    return variant


def names(*, include_aliases: bool = False) -> list[str]:
    """Names of every registered attention variant, sorted (aliases only when asked)."""
    return sorted([*_REGISTRY, *(_ALIASES if include_aliases else ())])


def get(name: str) -> Variant:
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except (KeyError, TypeError):  # TypeError: not a name at all (a list from a sweep file)
        raise ConfigError(
            f"unknown attention {name!r}; valid names are {names()}"
        ) from None


def name_of(config: Any) -> str:
    """The registered name whose config class ``config`` is an instance of."""
    for variant in _REGISTRY.values():
        if type(config) is variant.config:
            return variant.name
    raise ConfigError(f"{type(config).__name__} is not a registered attention config")


def make_config(name: str, **params: Any) -> Any:
    """The frozen config of variant ``name``; unknown parameters are an error."""
    return from_dict(get(name).config, params)


def config_to_dict(config: Any) -> dict[str, Any]:
    """``{"name": ..., **fields}``: the serialised form used in results."""
    return {"name": name_of(config), **dataclasses.asdict(config)}


def config_from_dict(data: dict[str, Any], where: str = "model.attention") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object with a 'name', got {type(data).__name__} {data!r}")
    data = dict(data)
    if "name" not in data:
        raise ConfigError(f"attention config needs a 'name'; valid names are {names()}")
    name = data.pop("name")
    return from_dict(get(name).config, data, where)


def accepted_params(fn: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``fn`` takes (all of them if it takes ``**params``).

    A config holds fields for the module too (norm epsilons, loss weights), and
    a variant's ``attend``/``weights``/``reference`` take only their own, so a
    caller with a config passes it through this filter.
    """
    signature = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        return dict(params)
    return {key: value for key, value in params.items() if key in signature}


def build_module(config: Any, *, d_model: int, num_heads: int) -> AttentionModule:
    """The ``nn.Module`` of the variant that ``config`` belongs to."""
    return get(name_of(config)).module(config, d_model=d_model, num_heads=num_heads)


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_discover()
