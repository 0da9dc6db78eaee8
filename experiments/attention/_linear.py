"""The shared core of the linear-attention family: three forms of one sum.

Every member computes, for query ``i`` and the keys ``j`` it sees,

    num_i = sum_j (phi(q_i) . phi(k_j)) v_j        den_i = sum_j phi(q_i) . phi(k_j)

and combines them its own way (``num/den`` for normalised linear attention,
``norm(num)`` for NormAttention, a centred version for InLine). The three
forms give the same ``(num, den)``:

- ``parallel``: the masked ``(Tq, Tk)`` matrix (quadratic memory);
- ``chunked``: blocks of ``chunk_size`` tokens, a masked matrix inside a block
  and the fast-weight state ``S = sum phi(k) v^T``, ``z = sum phi(k)`` across
  blocks (memory linear in length; Yang et al. 2024, arXiv 2312.06635);
  On CUDA, when ``fla-core`` is installed, ``num`` comes from its Triton
  chunk kernel (``chunk_linear_attn``, unnormalised, scale 1) and ``den``
  from a cumulative sum of ``phi(k)``; elsewhere the PyTorch blocks run.
- ``recurrent``: one token at a time through :func:`step`, carrying only
  ``(S, z)``: the O(1)-state view (Schlag et al. 2021, arXiv 2102.11174).

Non-causal attention uses the associative form ``phi(Q) (phi(K)^T V)`` in
every form (there is no order to respect). A causal block of ``Tq < Tk``
queries is aligned to the end of the keys: the first ``Tk - Tq`` keys enter
the state before the loop starts.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from experiments.attention.base import AttentionModule, positions
from experiments.attention.base import scores as base_scores
from experiments.attention._features import FEATURE_MAPS, FeatureMap
from experiments.config import check_choices, param, require

FORMS = ("parallel", "chunked", "recurrent")
State = tuple[torch.Tensor, torch.Tensor]  # S (B, H, F, Dv), z (B, H, F)


@dataclasses.dataclass(frozen=True)
class LinearFamilyConfig:
    """Fields every linear-family variant shares; subclasses add their own."""

    feature_map: str = param("elu1", "feature map phi", choices=tuple(FEATURE_MAPS))
    form: str = param("parallel", "parallel (masked matrix), chunked, or recurrent (O(1) state)", choices=FORMS)
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

    def check_run(self, *, positions: int, device: torch.device) -> None:
        """Refuse, before training, cosFormer features whose fixed length is shorter than the sequences."""
        require(self.feature_map != "cosformer" or self.cos_max_len >= positions,
                f"model.attention.cos_max_len={self.cos_max_len} must be at least the longest sequence, "
                f"{positions} tokens")


def build_features(config: LinearFamilyConfig, head_dim: int) -> FeatureMap:
    return FEATURE_MAPS[config.feature_map](head_dim, config)


def resolve(config_cls: type, q: torch.Tensor, features: FeatureMap | None, params: dict):
    """The functional cores' shared start: the config from keyword parameters, and the feature map.

    A module passes its own ``features`` (Performer's projection is drawn once);
    a bare call builds them from the parameters.
    """
    config = config_cls(**params)
    return config, features if features is not None else build_features(config, q.shape[-1])


def featurize(features: FeatureMap, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q_pos, k_pos = positions(q.shape[-2], k.shape[-2], q.device)
    return features(q, q_pos), features(k, k_pos)


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


def _parallel(fq, fk, v, state):
    scores = masked_scores(fq, fk, causal=True)  # (B, H, Tq, Tk)
    return scores @ v, scores.sum(dim=-1, keepdim=True)


def _chunked(fq, fk, v, state, chunk_size):
    # split, not slicing in a loop: each slice's backward would zero-fill a full-length gradient (O(T^2 / c))
    nums, dens = [], []
    for q_c, k_c, v_c in zip(*(t.split(chunk_size, dim=-2) for t in (fq, fk, v))):
        inner = (q_c @ k_c.transpose(-2, -1)).tril()  # (B, H, c, c)
        num, den = read(state, q_c)
        nums.append(num + inner @ v_c)
        dens.append(den + inner.sum(dim=-1, keepdim=True))
        state = absorb(state, k_c, v_c)
    return torch.cat(nums, dim=-2), torch.cat(dens, dim=-2)


def fla_chunk_available(fq: torch.Tensor) -> bool:
    """fla's chunk kernel is the fast path: CUDA tensors, fla-core importable, not switched off."""
    if not fq.is_cuda or os.environ.get("ATTN_NO_FLA") == "1":
        return False
    try:
        from fla.ops.linear_attn import chunk_linear_attn  # noqa: F401
    except ImportError:
        return False
    return True


def _fla_chunked(fq, fk, v):
    from fla.ops.linear_attn import chunk_linear_attn

    # fla's layout is [B, T, H, D]; normalize=False gives sum_j (fq_i . fk_j) v_j with scale 1
    num, _ = chunk_linear_attn(fq.transpose(1, 2), fk.transpose(1, 2), v.transpose(1, 2), scale=1.0,
                               normalize=False)
    den = (fq * fk.cumsum(dim=-2)).sum(dim=-1, keepdim=True)
    return num.transpose(1, 2).to(v.dtype), den


def _recurrent(fq, fk, v, state):
    nums, dens = [], []
    for fq_t, fk_t, v_t in zip(fq.unbind(dim=2), fk.unbind(dim=2), v.unbind(dim=2)):  # one backward, not T
        (num, den), state = step(state, fq_t, fk_t, v_t)
        nums.append(num)
        dens.append(den)
    return torch.stack(nums, dim=-2), torch.stack(dens, dim=-2)


def terms(fq, fk, v, *, causal: bool, form: str = "parallel", chunk_size: int = 64):
    """``(num, den)``: ``(B, H, Tq, Dv)`` and ``(B, H, Tq, 1)``."""
    state = empty_state(fq, v)
    if not causal:
        return read(absorb(state, fk, v), fq)
    tq, tk = fq.shape[-2], fk.shape[-2]
    if tq > tk:
        raise ValueError(f"causal attention needs at most as many queries ({tq}) as keys ({tk})")
    if form == "parallel":
        return _parallel(fq, fk, v, state)
    prefix = tk - tq
    state = absorb(state, fk[:, :, :prefix], v[:, :, :prefix])
    fk, v = fk[:, :, prefix:], v[:, :, prefix:]
    if form == "chunked":
        if prefix == 0 and fla_chunk_available(fq):
            return _fla_chunked(fq, fk, v)
        return _chunked(fq, fk, v, state, chunk_size)
    if form == "recurrent":
        return _recurrent(fq, fk, v, state)
    raise ValueError(f"unknown form {form!r}; valid forms are {list(FORMS)}")


def masked_scores(fq, fk, *, causal: bool) -> torch.Tensor:
    """``phi(Q) phi(K)^T`` with masked entries 0: ``(B, H, Tq, Tk)``."""
    return base_scores(fq, fk, causal=causal, scale=1.0, masked=0.0)


class LinearFamilyModule(AttentionModule):
    """Owns the feature map; decodes with the constant-size state ``(S, z)``.

    Subclasses implement :meth:`combine` (``(num, den, v_sum, count) -> out``)
    and :meth:`head_weights`.
    """

    needs_value_sums = False  # InLine also needs sum_j v_j and the visible count

    def __init__(self, config, *, d_model: int, num_heads: int):
        super().__init__(config, d_model=d_model, num_heads=num_heads)
        self.features = build_features(config, self.head_dim)
        self.feature_dim = self.features.dim

    def combine(self, num, den, v_sum, count):
        raise NotImplementedError

    def mix(self, q, k, v, *, causal):
        fq, fk = featurize(self.features, q, k)
        num, den = terms(fq, fk, v, causal=causal, form=self.config.form, chunk_size=self.config.chunk_size)
        v_sum = count = None
        if self.needs_value_sums:
            ones_q, ones_k = fq.new_ones(*fq.shape[:-1], 1), fk.new_ones(*fk.shape[:-1], 1)
            v_sum, count = terms(ones_q, ones_k, v, causal=causal, form=self.config.form,
                                 chunk_size=self.config.chunk_size)
        return self.combine(num, den, v_sum, count)

    def init_cache(self, batch: int, *, device=None, dtype=None):
        memory = torch.zeros(batch, self.num_heads, self.feature_dim, self.head_dim, device=device, dtype=dtype)
        normaliser = torch.zeros(batch, self.num_heads, self.feature_dim, device=device, dtype=dtype)
        cache = {"S": memory, "z": normaliser, "t": 0}
        if self.needs_value_sums:
            cache["v_sum"] = torch.zeros(batch, self.num_heads, self.head_dim, device=device, dtype=dtype)
        return cache

    def decode(self, x_t, cache):
        q, k, v = self.project(x_t)  # (B, H, 1, Dh)
        position = torch.tensor([cache["t"]], device=x_t.device)
        fq, fk = self.features(q, position)[:, :, 0], self.features(k, position)[:, :, 0]
        (num, den), (memory, normaliser) = step((cache["S"], cache["z"]), fq, fk, v[:, :, 0])
        new = {"S": memory, "z": normaliser, "t": cache["t"] + 1}
        v_sum = count = None
        if self.needs_value_sums:
            new["v_sum"] = cache["v_sum"] + v[:, :, 0]
            v_sum, count = new["v_sum"].unsqueeze(-2), torch.full_like(den, float(new["t"])).unsqueeze(-2)
        out = self.combine(num.unsqueeze(-2), den.unsqueeze(-2), v_sum, count)  # (B, H, 1, Dh)
        return self._merge(out), new
