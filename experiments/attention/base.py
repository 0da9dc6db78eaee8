"""The attention contract and the helpers every variant shares.

Shapes: ``q`` is ``(B, H, Tq, D)``, ``k`` is ``(B, H, Tk, D)``, ``v`` is
``(B, H, Tk, Dv)``; outputs are ``(B, H, Tq, Dv)`` and attention matrices
``(B, H, Tq, Tk)``. A causal mask is aligned to the end of the keys, so query
``i`` sees keys ``j <= i + (Tk - Tq)``: with ``Tq == Tk`` this is the usual
lower triangle, and a block of new queries appended to a cache sees the whole
cache.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from experiments.config import param, require

# attend(q, k, v, *, causal, **params) -> (B, H, Tq, Dv)
AttendFn = Callable[..., torch.Tensor]
# weights(q, k, *, causal, **params) -> (B, H, Tq, Tk)
WeightsFn = Callable[..., torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Variant:
    """Everything the registry knows about one attention variant."""

    name: str
    config: type  # frozen dataclass of the variant's hyper-parameters
    module: type  # AttentionModule subclass, built as module(config, *, d_model, num_heads)
    attend: AttendFn  # the fast functional core
    reference: AttendFn  # a readable version of attend that tests compare with
    weights: WeightsFn | None  # the full attention matrix, where one exists
    summary: str  # one line for listings and --help

    def __post_init__(self):
        if not (isinstance(self.module, type) and issubclass(self.module, AttentionModule)):
            raise TypeError(f"variant {self.name!r}: module must be an AttentionModule subclass, got {self.module!r}")

    @property
    def forms(self) -> tuple[str, ...]:
        """The ways the variant can be computed: the choices of its config's ``form`` field, ``auto`` aside
        (``auto`` picks among them). Empty for a variant with one way only."""
        for field in dataclasses.fields(self.config):
            if field.name == "form":
                return tuple(choice for choice in field.metadata.get("choices", ()) if choice != "auto")
        return ()

    def forms_on(self, device: str) -> tuple[str, ...]:
        """:attr:`forms` that run on ``device`` (``cpu`` or ``cuda``)."""
        return tuple(form for form in self.forms if device == "cuda" or form not in CUDA_ONLY_FORMS)


CUDA_ONLY_FORMS = ("fused", "fla_chunk")  # Triton kernels: the element-wise one, fla's chunked linear attention


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """Config of a variant whose hyper-parameter is the logit scale. Each variant subclasses it (the registry
    tells variants apart by their config class) and may add fields, calling ``super().__post_init__()``."""

    scale: float | None = param(None, "logit scale; None means 1/sqrt(head_dim)")

    def __post_init__(self):
        require(self.scale is None or self.scale > 0, f"scale must be positive, got {self.scale}")


def causal_mask(tq: int, tk: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(tq, tk)`` mask, True where query ``i`` may see key ``j``."""
    if tq > tk:
        raise ValueError(f"causal attention needs at most as many queries ({tq}) as keys ({tk})")
    rows = torch.arange(tq, device=device).unsqueeze(1)
    cols = torch.arange(tk, device=device).unsqueeze(0)
    return cols <= rows + (tk - tq)


def default_scale(q: torch.Tensor, scale: float | None) -> float:
    """``scale``, or ``1/sqrt(head_dim)`` when it is None."""
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


def scores(q: torch.Tensor, k: torch.Tensor, *, causal: bool, scale: float | None = None,
           masked: float = float("-inf")) -> torch.Tensor:
    """The logits every variant then normalises: ``(q k^T) * scale``, with the keys a query may not see set to
    ``masked`` (``-inf`` before softmax, sparsemax and entmax; ``0`` before ReLU and for feature-map products).

    ``scale`` None is ``1/sqrt(head_dim)``. The element-wise variants scale the
    queries first, as their blockwise and fused kernels do, by passing
    ``q * scale`` and ``scale=1.0`` (a product by 1.0 is exact, so each form
    keeps its own rounding).
    """
    out = q @ k.transpose(-2, -1)  # (B, H, Tq, D) @ (B, H, D, Tk) -> (B, H, Tq, Tk)
    scale = default_scale(q, scale)
    if scale != 1.0:  # a product by 1.0 would change nothing but cost a pass over the T x T matrix
        out = out * scale
    if causal:
        out = out.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), masked)
    return out


def visible_counts(tq: int, tk: int, *, causal: bool, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(tq, 1)`` tensor: how many keys each query sees (``n_i`` in the papers)."""
    if not causal:
        return torch.full((tq, 1), float(tk), device=device, dtype=dtype)
    return (torch.arange(tq, device=device, dtype=dtype) + 1 + (tk - tq)).unsqueeze(1)


def positions(tq: int, tk: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute positions of queries and keys, queries aligned to the end of the keys."""
    keys = torch.arange(tk, device=device)
    return keys[tk - tq:] if tq <= tk else torch.arange(tq, device=device), keys


def cache_bytes(cache: Any) -> int:
    """Bytes held by the tensors of a decoding cache (nested dicts, lists, tuples)."""
    if isinstance(cache, torch.Tensor):
        return cache.numel() * cache.element_size()
    if isinstance(cache, dict):
        return sum(cache_bytes(value) for value in cache.values())
    if isinstance(cache, (list, tuple)):
        return sum(cache_bytes(value) for value in cache)
    return 0


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


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be (batch, heads, time, head_dim) tensors")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"incompatible shapes q={tuple(q.shape)} k={tuple(k.shape)} v={tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k head dims differ: {q.shape[-1]} != {k.shape[-1]}")


class AttentionModule(nn.Module):
    """Multi-head attention around a variant's functional core.

    Owns the query, key-value and output projections. A variant whose module
    is its functional core and nothing more sets ``core = staticmethod(attend)``
    and ``matrix = staticmethod(weights)``: :meth:`mix` and :meth:`head_weights`
    call them with the config fields they take. Others override :meth:`mix`
    (and :meth:`head_weights`), and any may return a normalisation of the
    concatenated heads from :meth:`output_norm` (applied before the output
    projection).
    """

    core: AttendFn | None = None  # attend(q, k, v, *, causal, **config fields it takes)
    matrix: WeightsFn | None = None  # weights(q, k, *, causal, **config fields it takes)

    def __init__(self, config: Any, *, d_model: int, num_heads: int):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.config = config
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.kv_proj = nn.Linear(d_model, 2 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm = self.output_norm(config, d_model)  # None: the heads go to out_proj as they are
        fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
        self.core_params = accepted_params(self.core, fields) if self.core is not None else {}
        self.matrix_params = accepted_params(self.matrix, fields) if self.matrix is not None else {}

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, _ = x.shape
        return x.view(batch, time, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def project(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """Queries from ``x``, keys and values from ``context`` (``x`` if None)."""
        source = x if context is None else context
        k, v = self.kv_proj(source).split(self.d_model, dim=-1)
        return self._split(self.q_proj(x)), self._split(k), self._split(v)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool) -> torch.Tensor:
        if self.core is None:
            raise NotImplementedError(f"{type(self).__name__} sets neither core nor mix")
        return self.core(q, k, v, causal=causal, **self.core_params)  # (B, H, Tq, Dv)

    def head_weights(self, q: torch.Tensor, k: torch.Tensor, *, causal: bool) -> torch.Tensor:
        if self.matrix is None:
            raise NotImplementedError(f"{type(self).__name__} has no attention matrix")
        return self.matrix(q, k, causal=causal, **self.matrix_params)  # (B, H, Tq, Tk)

    def output_norm(self, config: Any, d_model: int) -> nn.Module | None:
        """The normalisation of the concatenated heads ``(B, T, C)`` before the output projection, built once
        from the config; none by default."""
        return None

    def post(self, z: torch.Tensor) -> torch.Tensor:
        """:attr:`norm` of the concatenated heads ``(B, T, C)``; identity without one."""
        return z if self.norm is None else self.norm(z)

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """Auxiliary losses of the last forward pass (name -> weighted scalar); none by default.

        The model sums these over its blocks and the trainer adds the sum to the
        task loss, so a variant with a regulariser needs no change elsewhere.
        """
        return {}

    def _merge(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, time, _ = z.shape
        z = z.transpose(1, 2).reshape(batch, time, self.d_model)  # (B, T, C)
        return self.out_proj(self.post(z))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *, causal: bool = True,
                initial_state: dict[str, Any] | None = None, output_final_state: bool = False):
        """``(B, T, C)`` outputs for ``x``; with ``output_final_state`` also the state after its last token.

        The state contract is fla's: ``initial_state`` is the state an earlier
        call returned, holding the tokens that came before ``x``. Decoding is
        this same forward pass, one token (or one piece of a prompt) at a time.
        States belong to causal self-attention.
        """
        q, k, v = self.project(x, context)
        if initial_state is None and not output_final_state:
            return self._merge(self.mix(q, k, v, causal=causal))  # mix: (B, H, T, Dh)
        if not causal or context is not None:
            raise ValueError("a state is carried by causal self-attention only")
        z, state = self.mix_state(q, k, v, causal=True, initial_state=initial_state, output_final_state=True)
        return (self._merge(z), state) if output_final_state else self._merge(z)

    def mix_state(self, q, k, v, *, causal: bool, initial_state: dict[str, Any] | None = None,
                  output_final_state: bool = False):
        """:meth:`mix` after the keys and values of ``initial_state``; the default state is a key-value cache
        ``{"k", "v"}`` of every token seen, which the end-aligned causal mask makes exact. Variants with a
        constant-size state override this."""
        if initial_state is not None:
            k = torch.cat([initial_state["k"], k], dim=2)  # (B, H, T0 + T, Dh)
            v = torch.cat([initial_state["v"], v], dim=2)
        z = self.mix(q, k, v, causal=causal)
        return (z, {"k": k, "v": v}) if output_final_state else z

    def weights(self, x: torch.Tensor, context: torch.Tensor | None = None, *, causal: bool = True) -> torch.Tensor:
        """The ``(B, H, Tq, Tk)`` attention matrix this module applies to ``x``."""
        q, k, _ = self.project(x, context)
        return self.head_weights(q, k, causal=causal)
