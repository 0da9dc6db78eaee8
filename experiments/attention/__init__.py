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

from typing import Any

from experiments.attention.base import AttentionModule, Variant, accepted_params
from experiments.registry import Registry

__all__ = [
    "AttentionModule",
    "Variant",
    "accepted_params",
    "aliases",
    "build_module",
    "config_from_dict",
    "config_to_dict",
    "get",
    "make_config",
    "name_of",
    "names",
    "register",
    "unregister",
]

_VARIANTS: Registry[Variant] = Registry("attention", "model.attention")
register = _VARIANTS.register
unregister = _VARIANTS.unregister
names = _VARIANTS.names
aliases = _VARIANTS.aliases
get = _VARIANTS.get
name_of = _VARIANTS.name_of
make_config = _VARIANTS.make_config
config_to_dict = _VARIANTS.config_to_dict
config_from_dict = _VARIANTS.config_from_dict


def build_module(config: Any, *, d_model: int, num_heads: int) -> AttentionModule:
    """The ``nn.Module`` of the variant that ``config`` belongs to."""
    return get(name_of(config)).module(config, d_model=d_model, num_heads=num_heads)


_VARIANTS.discover(__name__, __path__)
