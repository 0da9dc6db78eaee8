"""The sweeps: one module each, with ``PROFILES`` and ``configs(profile) -> list[RunConfig]``.

``PROFILES`` names a sweep's sizes (e.g. ``smoke``, ``quick``, ``full``) and
``configs`` builds the runs of one with plain loops. Sweep modules are found
by listing this package, as the attention variants are
(:mod:`experiments.attention`), so adding a sweep means adding one file;
modules whose name starts with an underscore hold shared helpers and are not
sweeps. A module is imported when it is asked for. The sweep runner
(:mod:`experiments.sweep`) and the planner (:mod:`experiments.plan`) both read
this catalogue.

    >>> from experiments import sweeps
    >>> "mqar_pairs" in sweeps.names()
    True
    >>> configs = sweeps.configs("mqar_pairs", "smoke")
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from experiments.config import ConfigError
from experiments.runs import RunConfig
from experiments.sweep_files import distinct


def names() -> list[str]:
    """Every sweep module's name, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def load(name: str) -> ModuleType:
    """The sweep module ``name``; ConfigError naming the valid names for any other."""
    if name not in names():
        raise ConfigError(f"unknown sweep {name!r}; valid names are {names()}")
    return importlib.import_module(f"{__name__}.{name}")


def configs(name: str, profile: str) -> list[RunConfig]:
    """The runs of sweep ``name`` at ``profile``, each config once; ConfigError naming the valid profiles."""
    module = load(name)
    if profile not in module.PROFILES:
        raise ConfigError(f"sweep {name!r} has no profile {profile!r}; valid profiles are {list(module.PROFILES)}")
    return distinct(module.configs(profile), f"sweep {name!r} profile {profile!r}")
