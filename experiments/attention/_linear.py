"""The shared core of the linear-attention family: three forms of one sum.

Every member computes, for query ``i`` and the keys ``j`` it sees,

    num_i = sum_j (phi(q_i) . phi(k_j)) v_j        den_i = sum_j phi(q_i) . phi(k_j)

and combines them its own way (``num/den`` for normalised linear attention,
``norm(num)`` for NormAttention, a centred version for InLine). The forms
(the config's ``form``) give the same ``(num, den)``:

- ``parallel``: the masked ``(Tq, Tk)`` matrix (quadratic memory);
- ``chunked``: blocks of ``chunk_size`` tokens in PyTorch, a masked matrix
  inside a block and the fast-weight state ``S = sum phi(k) v^T``,
  ``z = sum phi(k)`` across blocks (memory linear in length; Yang et al.
  2024, arXiv 2312.06635);
- ``fla_chunk``: ``num`` from fla-core's Triton chunk kernel
  (``chunk_linear_attn``, unnormalised, scale 1) and ``den`` from a
  cumulative sum of ``phi(k)``; CUDA with ``fla-core`` installed only. The
  kernel takes a fresh sequence: with a carried state, or fewer queries than
  keys, this form runs the ``chunked`` blocks (the same sums);
- ``recurrent``: one token at a time through :func:`step`, carrying only
  ``(S, z)``: the O(1)-state view (Schlag et al. 2021, arXiv 2102.11174),
  and the literal reference the other forms' final states are tested against;
- ``auto``: ``fla_chunk`` on CUDA with ``fla-core`` importable; elsewhere
  ``parallel`` up to :data:`PARALLEL_MAX` query-key pairs per head and
  ``chunked`` above (:func:`planned_form`).

Every form takes the state of earlier tokens and can return the state after
its last token (:func:`run`, fla's ``initial_state`` / ``output_final_state``),
so decoding is the training code applied to one token at a time.

Non-causal attention uses the associative form ``phi(Q) (phi(K)^T V)`` in
every form (there is no order to respect). A causal block of ``Tq < Tk``
queries is aligned to the end of the keys: the first ``Tk - Tq`` keys enter
the state before the loop starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from experiments.attention.base import AttentionModule, check_qkv, positions
from experiments.attention.base import scores as base_scores
from experiments.attention._features import FEATURE_MAPS, FeatureMap
from experiments.config import check_choices, param, require

FORMS = ("auto", "parallel", "chunked", "fla_chunk", "recurrent")
PARALLEL_MAX = 1 << 20  # auto without fla: the parallel form up to this many query-key pairs per head (1024 x 1024)
State = tuple[torch.Tensor, torch.Tensor]  # S (B, H, F, Dv), z (B, H, F)


@dataclasses.dataclass(frozen=True)
class LinearFamilyConfig:
    """Fields every linear-family variant shares; subclasses add their own."""

    feature_map: str = param("elu1", "feature map phi", choices=tuple(FEATURE_MAPS))
    form: str = param("parallel", "parallel (masked matrix), chunked (PyTorch blocks), fla_chunk (fla's Triton "
                      "kernel, CUDA), recurrent (O(1) state), or auto", choices=FORMS)
    chunk_size: int = param(64, "tokens per block of the chunked form")
    num_features: int | None = param(None, "performer: random features m (None: head_dim)")
    feature_seed: int = param(0, "performer: seed of the fixed random projection")
    dpfp_nu: int = param(1, "dpfp: number of shifted products nu (feature dim 2*head_dim*nu)")
    cos_max_len: int = param(4096, "cosformer: the M of cos(pi (i-j) / 2M); positions must stay below it")

    def __post_init__(self):
        check_choices(self)
        require(self.chunk_size >= 1, f"chunk_size must be positive, got {self.chunk_size}")
        require(self.num_features is None or self.num_features >= 1,
                f"num_features must be positive, got {self.num_features}")
        require(self.dpfp_nu >= 1, f"dpfp_nu must be positive, got {self.dpfp_nu}")
        require(self.cos_max_len >= 1, f"cos_max_len must be positive, got {self.cos_max_len}")

    def check_run(self, *, positions: int, device: torch.device, head_dim: int | None = None) -> None:
        """Refuse, before training, cosFormer features whose fixed length is shorter than the sequences, and
        fla's kernel where it cannot run."""
        require(self.feature_map != "cosformer" or self.cos_max_len >= positions,
                f"model.attention.cos_max_len={self.cos_max_len} must be at least the longest sequence, "
                f"{positions} tokens")
        require(self.form != "fla_chunk" or fla_available(device),
                f"model.attention.form=fla_chunk needs fla-core and a CUDA device; this run trains on "
                f"{device.type}: use {', '.join(form for form in FORMS if form != 'fla_chunk')}")

    def holds_matrix(self, *, device: str, queries: int, keys: int, head_dim: int) -> bool:
        """The parallel form keeps the masked ``(Tq, Tk)`` score matrix; the others keep states."""
        return planned_form(self.form, torch.device(device), queries, keys) == "parallel"

    def feature_dim(self, head_dim: int) -> int:
        """Features per head of phi(q), phi(k): what the memory estimate counts (a planted ``num_features`` or
        ``dpfp_nu`` of 1e9 is refused before training, not when its tensors are allocated)."""
        return FEATURE_MAPS[self.feature_map].size(head_dim, self)


def build_features(config: LinearFamilyConfig, head_dim: int) -> FeatureMap:
    return FEATURE_MAPS[config.feature_map](head_dim, config)


def resolve(config_cls: type, q: torch.Tensor, features: FeatureMap | None, params: dict):
    """The functional cores' shared start: the config from keyword parameters, and the feature map.

    A module passes its own ``features`` (Performer's projection is drawn once);
    a bare call builds them from the parameters.
    """
    config = config_cls(**params)
    return config, features if features is not None else build_features(config, q.shape[-1])


def featurize(features: FeatureMap, q: torch.Tensor, k: torch.Tensor, offset: int = 0):
    """``phi(q), phi(k)`` at the tokens' absolute positions; ``offset`` tokens came before (a carried state)."""
    q_pos, k_pos = positions(q.shape[-2], k.shape[-2], q.device)
    return features(q, q_pos + offset), features(k, k_pos + offset)


def empty_state(fq: torch.Tensor, v: torch.Tensor) -> State:
    batch, heads, _, dim = fq.shape
    return fq.new_zeros(batch, heads, dim, v.shape[-1]), fq.new_zeros(batch, heads, dim)


def absorb(state: State, fk: torch.Tensor, v: torch.Tensor) -> State:
    """Add a block of keys and values to the state."""
    memory, normaliser = state
    return memory + fk.transpose(-2, -1) @ v, normaliser + fk.sum(dim=-2)


def read(state: State, fq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(num, den)`` of queries ``fq`` against everything in the state."""
    memory, normaliser = state
    return fq @ memory, fq @ normaliser.unsqueeze(-1)


def step(state: State, fq_t: torch.Tensor, fk_t: torch.Tensor, v_t: torch.Tensor):
    """One token: ``fq_t, fk_t`` are ``(B, H, F)``, ``v_t`` is ``(B, H, Dv)``; returns ((num, den), state)."""
    memory, normaliser = state
    memory = memory + fk_t.unsqueeze(-1) * v_t.unsqueeze(-2)  # S += phi(k) v^T
    normaliser = normaliser + fk_t
    num = (fq_t.unsqueeze(-2) @ memory).squeeze(-2)  # (B, H, Dv)
    den = (fq_t * normaliser).sum(-1, keepdim=True)  # (B, H, 1)
    return (num, den), (memory, normaliser)


def _parallel(fq, fk, v, state, final_state):
    scores = masked_scores(fq, fk, causal=True)  # (B, H, Tq, Tk)
    num, den = scores @ v, scores.sum(dim=-1, keepdim=True)
    if state is not None:  # a carried state: every query also sees what came before
        before_num, before_den = read(state, fq)
        num, den = num + before_num, den + before_den
    final = absorb(state if state is not None else empty_state(fq, v), fk, v) if final_state else None
    return num, den, final


def _chunked(fq, fk, v, state, chunk_size):
    # split, not slicing in a loop: each slice's backward would zero-fill a full-length gradient (O(T^2 / c))
    nums, dens = [], []
    for q_c, k_c, v_c in zip(*(t.split(chunk_size, dim=-2) for t in (fq, fk, v))):
        inner = (q_c @ k_c.transpose(-2, -1)).tril()  # (B, H, c, c)
        num, den = read(state, q_c)
        nums.append(num + inner @ v_c)
        dens.append(den + inner.sum(dim=-1, keepdim=True))
        state = absorb(state, k_c, v_c)
    return torch.cat(nums, dim=-2), torch.cat(dens, dim=-2), state


def fla_available(device: torch.device) -> bool:
    """Whether fla's chunk kernel can run on ``device``: CUDA, with fla-core importable."""
    if device.type != "cuda":
        return False
    try:
        from fla.ops.linear_attn import chunk_linear_attn  # noqa: F401
    except ImportError:
        return False
    return True


def planned_form(form: str, device: torch.device, queries: int, keys: int) -> str:
    """The form ``form`` runs as: ``auto`` is fla_chunk on CUDA with fla-core importable, otherwise parallel up
    to :data:`PARALLEL_MAX` query-key pairs per head and chunked above; any other form is itself."""
    if form != "auto":
        return form
    if fla_available(device):
        return "fla_chunk"
    return "parallel" if queries * keys <= PARALLEL_MAX else "chunked"


def _fla_chunked(fq, fk, v):
    from fla.ops.linear_attn import chunk_linear_attn

    # fla's layout is [B, T, H, D]; normalize=False gives sum_j (fq_i . fk_j) v_j with scale 1
    num, _ = chunk_linear_attn(fq.transpose(1, 2), fk.transpose(1, 2), v.transpose(1, 2), scale=1.0,
                               normalize=False)
    den = (fq * fk.cumsum(dim=-2)).sum(dim=-1, keepdim=True)
    return num.transpose(1, 2).to(v.dtype), den


def _recurrent(fq, fk, v, state):
    """The literal recurrence, token by token: the readable reference of the other forms' final state."""
    nums, dens = [], []
    for fq_t, fk_t, v_t in zip(fq.unbind(dim=2), fk.unbind(dim=2), v.unbind(dim=2)):  # one backward, not T
        (num, den), state = step(state, fq_t, fk_t, v_t)
        nums.append(num)
        dens.append(den)
    return torch.stack(nums, dim=-2), torch.stack(dens, dim=-2), state


def terms(fq, fk, v, *, causal: bool, form: str = "parallel", chunk_size: int = 64,
          state: State | None = None, final_state: bool = False):
    """``(num, den, final)``: ``(B, H, Tq, Dv)``, ``(B, H, Tq, 1)`` and the state after every key
    (None unless ``final_state``). ``state`` (None: empty) holds the keys that came before ``fk``."""
    if not causal:
        if state is not None or final_state:
            raise ValueError("a state is carried by causal attention only")
        num, den = read(absorb(empty_state(fq, v), fk, v), fq)
        return num, den, None
    tq, tk = fq.shape[-2], fk.shape[-2]
    if tq > tk:
        raise ValueError(f"causal attention needs at most as many queries ({tq}) as keys ({tk})")
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; valid forms are {list(FORMS)}")
    form = planned_form(form, fq.device, tq, tk)
    if form == "parallel":
        return _parallel(fq, fk, v, state, final_state)
    prefix = tk - tq
    if form == "fla_chunk":
        if not fla_available(fq.device):
            raise ValueError(f"form='fla_chunk' needs fla-core and a CUDA tensor, got a {fq.device.type} tensor; "
                             f"valid forms here are {[f for f in FORMS if f != 'fla_chunk']}")
        if state is None and prefix == 0:
            num, den = _fla_chunked(fq, fk, v)
            return num, den, absorb(empty_state(fq, v), fk, v) if final_state else None
        form = "chunked"  # fla's kernel takes a fresh sequence; the blocks carry the state
    state = absorb(state if state is not None else empty_state(fq, v), fk[:, :, :prefix], v[:, :, :prefix])
    fk, v = fk[:, :, prefix:], v[:, :, prefix:]
    run = _chunked(fq, fk, v, state, chunk_size) if form == "chunked" else _recurrent(fq, fk, v, state)
    return run if final_state else (*run[:2], None)


def masked_scores(fq, fk, *, causal: bool) -> torch.Tensor:
    """``phi(Q) phi(K)^T`` with masked entries 0: ``(B, H, Tq, Tk)``."""
    return base_scores(fq, fk, causal=causal, scale=1.0, masked=0.0)


Combine = Callable[..., torch.Tensor]  # (config, num, den, v_sum, count) -> (B, H, Tq, Dv)


def run(config: LinearFamilyConfig, features: FeatureMap, q, k, v, *, causal: bool, combine: Combine,
        value_sums: bool = False, initial_state: dict | None = None, output_final_state: bool = False):
    """A family member's forward pass with fla's state contract: the output, and with ``output_final_state``
    also the state after the last token, ``{"S", "z", "t"}`` (plus ``"v_sum"`` when ``value_sums``).

    ``initial_state`` is such a state from an earlier call: the keys it holds
    come before ``k``, so decoding one token at a time (or a prompt in pieces)
    is this same function. ``combine`` turns ``(num, den)`` into the output;
    ``value_sums`` also passes it ``sum_j v_j`` and the count of keys seen.
    """
    check_qkv(q, k, v)
    start = 0 if initial_state is None else initial_state["t"]
    fq, fk = featurize(features, q, k, offset=start)
    state = None if initial_state is None else (initial_state["S"], initial_state["z"])
    options = dict(causal=causal, form=config.form, chunk_size=config.chunk_size, final_state=output_final_state)
    num, den, final = terms(fq, fk, v, state=state, **options)
    v_sum = count = sums = None
    if value_sums:  # sum_j v_j and n_i are the same sums with phi = 1
        ones_q, ones_k = fq.new_ones(*fq.shape[:-1], 1), fk.new_ones(*fk.shape[:-1], 1)
        before = None if initial_state is None else (initial_state["v_sum"].unsqueeze(-2),
                                                     fq.new_full((*fq.shape[:2], 1), float(start)))
        v_sum, count, sums = terms(ones_q, ones_k, v, state=before, **options)
    out = combine(config, num, den, v_sum, count)
    if not output_final_state:
        return out
    final_state = {"S": final[0], "z": final[1], "t": start + k.shape[-2]}
    if value_sums:
        final_state["v_sum"] = sums[0].squeeze(-2)  # (B, H, Dv)
    return out, final_state


class LinearFamilyModule(AttentionModule):
    """Owns the feature map; carries the constant-size state ``{"S", "z", "t"}`` between calls.

    Subclasses set :attr:`combine` (the variant's ``(config, num, den, v_sum,
    count) -> out``) and implement :meth:`head_weights`.
    """

    value_sums = False  # InLine also needs sum_j v_j and the visible count
    combine: Combine

    def __init__(self, config, *, d_model: int, num_heads: int):
        super().__init__(config, d_model=d_model, num_heads=num_heads)
        self.features = build_features(config, self.head_dim)
        self.feature_dim = self.features.dim

    def mix_state(self, q, k, v, *, causal, initial_state=None, output_final_state=False):
        return run(self.config, self.features, q, k, v, causal=causal, combine=self.combine,
                   value_sums=self.value_sums, initial_state=initial_state, output_final_state=output_final_state)

    def mix(self, q, k, v, *, causal):
        return self.mix_state(q, k, v, causal=causal)
