"""A named registry of components whose hyper-parameters are a frozen config dataclass.

Attention variants (:mod:`experiments.attention`) and tasks
(:mod:`synthetic`) are both looked up by name, serialised as
``{"name": ..., **fields}`` and rebuilt from that form with every value
checked. This is the one place that does it; each package holds one
``Registry`` and re-exports its methods.

    >>> from experiments.registry import Registry
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Toy:
    ...     width: int = 4
    >>> @dataclasses.dataclass(frozen=True)
    ... class Entry:
    ...     name: str
    ...     config: type
    >>> toys = Registry("toy", "toy")
    >>> _ = toys.register(Entry("toy", Toy))
    >>> toys.config_to_dict(toys.config_from_dict({"name": "toy", "width": 8}))
    {'name': 'toy', 'width': 8}
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from experiments.config import ConfigError, from_dict, to_dict

E = TypeVar("E")  # an entry: any object with ``name`` and ``config`` (the config class)


class Registry(Generic[E]):
    """Entries by name (and aliases), each with a frozen config class; ``kind`` names them in messages and
    ``path`` is where their config sits in a run config (``task``, ``model.attention``)."""

    def __init__(self, kind: str, path: str):
        self.kind, self.path = kind, path
        self._entries: dict[str, E] = {}
        self._aliases: dict[str, str] = {}

    def register(self, entry: E, *, aliases: tuple[str, ...] = ()) -> E:
        """Add ``entry`` (and other names for it); a name used twice is an error."""
        for name in (entry.name, *aliases):
            if name in self._entries or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[entry.name] = entry
        self._aliases.update({alias: entry.name for alias in aliases})
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (for a component tried out in a session or a test)."""
        self._entries.pop(name)
        for alias in [a for a, target in self._aliases.items() if target == name]:
            del self._aliases[alias]

    def names(self, *, include_aliases: bool = False) -> list[str]:
        """Registered names, sorted (aliases only when asked)."""
        return sorted([*self._entries, *(self._aliases if include_aliases else ())])

    def aliases(self) -> dict[str, str]:
        """Each other name and the registered name it stands for, sorted by alias."""
        return dict(sorted(self._aliases.items()))

    def get(self, name: str) -> E:
        try:
            return self._entries[self._aliases.get(name, name)]
        except (KeyError, TypeError):  # TypeError: not a name at all (a list from a sweep file)
            raise ConfigError(f"unknown {self.kind} {name!r}; valid names are {self.names()}") from None

    def name_of(self, config: Any) -> str:
        """The registered name whose config class ``config`` is an instance of."""
        for entry in self._entries.values():
            if type(config) is entry.config:
                return entry.name
        raise ConfigError(f"{type(config).__name__} is not a registered {self.kind} config")

    def make_config(self, name: str, **params: Any) -> Any:
        """The frozen config of ``name``; unknown parameters are an error."""
        return from_dict(self.get(name).config, params, self.path)

    def config_to_dict(self, config: Any) -> dict[str, Any]:
        """``{"name": ..., **fields}``: the serialised form used in results."""
        return {"name": self.name_of(config), **to_dict(config)}

    def config_from_dict(self, data: Any, where: str | None = None) -> Any:
        """The config that :meth:`config_to_dict` wrote; ``where`` is its dotted path in messages."""
        where = where or self.path
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a JSON object with a 'name', got {type(data).__name__} {data!r}")
        data = dict(data)
        if "name" not in data:
            raise ConfigError(f"{where} needs a 'name'; valid names are {self.names()}")
        return from_dict(self.get(data.pop("name")).config, data, where)

    def discover(self, package: str, path: Iterable[str]) -> None:
        """Import every module of ``package`` whose name does not start with ``_`` (each registers itself)."""
        for info in pkgutil.iter_modules(path):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")
