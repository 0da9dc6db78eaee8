"""A small decoder-only transformer whose attention is chosen from the registry.

Pre-norm blocks (``x + attn(LN(x))``, then ``x + mlp(LN(x))``) as in GPT-2
(Radford et al. 2019) and nanoGPT, learned absolute positions, optional
token mixing before the first block (:class:`TokenMixing`), GPT-2's
initialisation (normal(0, 0.02), residual output projections scaled by
``1/sqrt(2 * num_layers)``) and, optionally, tied input and output
embeddings. The setting the ReLA authors trained in is a set of knobs:
post-norm blocks (``LN(x + attn(x))``, Vaswani et al. 2017, arXiv
1706.03762), uniform unit-scaling initialisation with embeddings scaled by
``sqrt(d)`` (``init=unit_scaling``), and sinusoidal positions. The attention is any registered variant, built from its frozen config, so the
model never names a variant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from experiments import attention
from experiments.config import ConfigError, check_choices, check_values, param, require, to_dict

_ACTIVATIONS = {
    "gelu": torch.nn.functional.gelu,
    "relu": torch.relu,
    "softmax": lambda h: h.softmax(dim=-1),  # normalised over the memory slots
    "softmax_ln": lambda h: h.softmax(dim=-1),  # and a LayerNorm on the MLP output (see MLP)
}
MLP_ACTIVATIONS = tuple(_ACTIVATIONS)
TOKEN_MIXINGS = ("none", "shift", "conv")
POSITIONS = ("learned", "none", "sinusoidal")
NORM_PLACEMENTS = ("pre", "post")
INITS = ("gpt2", "unit_scaling")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    d_model: int = param(64, "residual stream width")
    num_layers: int = param(2, "transformer blocks")
    num_heads: int = param(1, "attention heads per block (d_model must divide evenly)")
    mlp: bool = param(True, "include the MLP sub-block in each block")
    mlp_ratio: int = param(4, "MLP hidden width as a multiple of d_model (the number of memory slots)")
    mlp_activation: str = param("gelu", "MLP activation: gelu, relu, softmax over the hidden units, or "
                                "softmax followed by a LayerNorm on the MLP output (ReLUFormer S2/S3)",
                                choices=MLP_ACTIVATIONS)
    tie_embeddings: bool = param(False, "share the input embedding and the output projection")
    token_mixing: str = param("none", "before the first block: none, shift (add the previous token's embedding) "
                              "or conv (a causal depthwise convolution of width conv_width); see TokenMixing",
                              choices=TOKEN_MIXINGS)
    conv_width: int = param(4, "taps of the conv token mixing (the token itself and conv_width - 1 before it)")
    positions: str = param("learned", "position information: learned absolute embeddings (up to the task's "
                           "length), or none (NoPE: order only through the causal mask, the token mixing and "
                           "the variant itself; any length), or sinusoidal (fixed sin/cos, Vaswani et al. "
                           "2017; any length)", choices=POSITIONS, added=True)
    norm_placement: str = param("pre", "each sub-layer's LayerNorm: pre (x + f(LN(x)), GPT-2, with a final LayerNorm "
                                "before the head) or post (LN(x + f(x)), Vaswani et al. 2017 and the ReLA authors' "
                                "code, arXiv 2104.07012)", choices=NORM_PLACEMENTS, added=True)
    init: str = param("gpt2", "initialisation: gpt2 (normal(0, 0.02), residual output projections scaled by "
                      "1/sqrt(2 num_layers); Radford et al. 2019) or unit_scaling (every matrix uniform with "
                      "variance 2/(fan_in + fan_out), gain 1; embeddings normal(0, 1/d) scaled by sqrt(d) when "
                      "looked up: the ReLA authors' setting)", choices=INITS, added=True)
    bos: bool = param(False, "prepend a learnt start vector to every sequence (position 0, no label), a first "
                      "token that every query sees: where attention sinks form (Xiao et al. 2023, arXiv "
                      "2309.17453; Gu et al. 2025, arXiv 2410.10781); attention maps keep its key column. "
                      "Decoder-only tasks", added=True)
    attention: Any = dataclasses.field(
        default_factory=lambda: attention.make_config("softmax"),
        metadata={"help": "frozen config of a registered attention variant"},
    )

    def __post_init__(self):
        check_choices(self)
        require(self.d_model >= 1, f"d_model must be positive, got {self.d_model}")
        require(self.num_layers >= 1, f"num_layers must be positive, got {self.num_layers}")
        require(self.num_heads >= 1, f"num_heads must be positive, got {self.num_heads}")
        require(self.d_model % self.num_heads == 0,
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        require(self.mlp_ratio >= 1, f"mlp_ratio must be positive, got {self.mlp_ratio}")
        require(2 <= self.conv_width <= 64, f"conv_width must be in [2, 64], got {self.conv_width}")
        attention.name_of(self.attention)  # raises ConfigError for a non-attention config

    def to_dict(self) -> dict[str, Any]:
        fields = {name: value for name, value in to_dict(self).items() if name != "attention"}
        fields["attention"] = attention.config_to_dict(self.attention)
        return fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"model: unknown key(s) {unknown}; valid keys are {valid}")
        if "attention" in data:
            data["attention"] = attention.config_from_dict(data["attention"])
        check_values(cls, "model", data)
        return cls(**data)


class MLP(nn.Module):
    """``down(act(up(x)))``: a key-value memory with ``hidden`` slots (Geva et al. 2021, arXiv 2012.14913).

    ``softmax`` normalises over the slots (the softmax-memory view of ReLUFormer,
    arXiv 2302.06461); ``softmax_ln`` adds a LayerNorm on the memory's output,
    the combination that S2 shows behaves like ReLU.
    """

    def __init__(self, d_model: int, hidden: int, activation: str = "gelu"):
        super().__init__()
        self.up = nn.Linear(d_model, hidden)
        self.down = nn.Linear(hidden, d_model)
        self.activation = activation
        self.out_norm = nn.LayerNorm(d_model) if activation == "softmax_ln" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.down(_ACTIVATIONS[self.activation](self.up(x)))  # up: (B, T, hidden)
        return self.out_norm(out) if self.out_norm is not None else out


class TokenMixing(nn.Module):
    """Mixes each token's embedding with its predecessors' before attention sees it.

    Recall needs a key's value to be found from the key: a query token must
    match the position *after* its earlier occurrence. With learned absolute
    positions alone, the first layer has to form that previous-token step by
    attention, which on MQAR takes more steps than a CPU budget has (the
    ``mqar_mixing`` sweep trains with and without mixing). H3 (arXiv
    2212.14052), Based (arXiv 2402.18668) and Zoology (arXiv 2312.04927) put a
    short convolution before the sequence mixer for this reason. The same
    mixing is applied for every attention variant, so comparisons stay fair.

    - ``shift``: ``x_t + e_{t-1}``, the previous token's embedding added
      (``e_{-1} = 0``); no parameters.
    - ``conv``: ``x_t + sum_{j<w} c_j * e_{t-j}``, a causal depthwise
      convolution of width ``w`` (one kernel per channel, PyTorch's default
      init); the token shift is the special case ``w = 2, c = (0, 1)``.
    """

    def __init__(self, kind: str, d_model: int, width: int):
        super().__init__()
        self.kind, self.width = kind, width
        self.conv = nn.Conv1d(d_model, d_model, width, groups=d_model, bias=False) if kind == "conv" else None

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """``embedded`` (B, T, C) -> what to add to it, (B, T, C); causal: row t reads rows <= t only."""
        if self.kind == "shift":
            return nn.functional.pad(embedded, (0, 0, 1, 0))[:, :-1]  # (B, T, C): row t holds e_{t-1}
        channels_first = nn.functional.pad(embedded.transpose(1, 2), (self.width - 1, 0))  # (B, C, w - 1 + T)
        return self.conv(channels_first).transpose(1, 2)  # (B, T, C)


def _mixing(config: "ModelConfig") -> TokenMixing | None:
    return None if config.token_mixing == "none" else TokenMixing(config.token_mixing, config.d_model,
                                                                  config.conv_width)


class Block(nn.Module):
    """A residual block: self-attention, cross-attention to an encoder's output (decoder blocks of an
    encoder-decoder only), then the MLP (if any); each sub-layer as ``x + sublayer(norm(x))`` (pre-norm) or
    ``norm(x + sublayer(x))`` (post-norm)."""

    def __init__(self, config: ModelConfig, cross_attention: Any = None):
        super().__init__()
        self.post_norm = config.norm_placement == "post"
        self.attn_norm = nn.LayerNorm(config.d_model)
        self.attn = attention.build_module(config.attention, d_model=config.d_model, num_heads=config.num_heads)
        self.mlp_norm = nn.LayerNorm(config.d_model) if config.mlp else None
        self.mlp = MLP(config.d_model, config.mlp_ratio * config.d_model, config.mlp_activation) if config.mlp else None
        self.cross_norm = nn.LayerNorm(config.d_model) if cross_attention is not None else None
        self.cross = None if cross_attention is None else attention.build_module(
            cross_attention, d_model=config.d_model, num_heads=config.num_heads)

    def _residual(self, x: torch.Tensor, norm: nn.Module, sublayer: Any) -> torch.Tensor:
        return norm(x + sublayer(x)) if self.post_norm else x + sublayer(norm(x))

    def _input(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """What a sub-layer reads of the residual stream ``x``."""
        return x if self.post_norm else norm(x)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, causal: bool = True) -> torch.Tensor:
        x = self._residual(x, self.attn_norm, lambda h: self.attn(h, causal=causal))  # (B, T, C)
        if self.cross is not None:
            x = self._residual(x, self.cross_norm, lambda h: self.cross(h, memory, causal=False))  # memory (B, S, C)
        if self.mlp is not None:
            x = self._residual(x, self.mlp_norm, self.mlp)
        return x

    def maps(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, causal: bool = True) -> torch.Tensor:
        """The attention matrix this block applies: cross-attention's ``(B, H, T, S)`` where it has one,
        else self-attention's ``(B, H, T, T)``."""
        if self.cross is None:
            return self.attn.weights(self._input(x, self.attn_norm), causal=causal)
        h = self._residual(x, self.attn_norm, lambda y: self.attn(y, causal=causal))
        return self.cross.weights(self._input(h, self.cross_norm), memory, causal=False)

    def value_norms(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, T)``: the norm of each token's value vector in self-attention, per head."""
        return self.attn.project(self._input(x, self.attn_norm))[2].norm(dim=-1)

    def output_ratio(self, x: torch.Tensor, memory: torch.Tensor | None = None, *,
                     causal: bool = True) -> torch.Tensor:
        """RMS of the attention's output over the RMS of the residual stream it is added to: how much the
        attention can move the stream (unnormalised ReLU attention at a small init: about 1%)."""
        out = self.attn(self._input(x, self.attn_norm), causal=causal)
        return out.float().pow(2).mean().sqrt() / x.float().pow(2).mean().sqrt().clamp_min(1e-30)

    def attention_modules(self) -> list[nn.Module]:
        return [self.attn] + ([self.cross] if self.cross is not None else [])


def _sum_aux_losses(blocks) -> dict[str, torch.Tensor]:
    """Auxiliary losses of the last forward pass (e.g. ReLUFormer's), summed over blocks by name."""
    total: dict[str, torch.Tensor] = {}
    for block in blocks:
        for module in block.attention_modules():
            for name, value in module.aux_losses().items():
                total[name] = total[name] + value if name in total else value
    return total


class Sinusoidal(nn.Module):
    """Fixed positions ``sin(t w_i), cos(t w_i)`` with ``w_i = 10000^(-i / (d/2))`` (Vaswani et al. 2017, arXiv
    1706.03762): no parameters, any length."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """``(T,)`` positions -> ``(T, C)``."""
        half = self.d_model // 2
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
        angles = positions.float()[:, None] * frequencies  # (T, C/2)
        return nn.functional.pad(torch.cat([angles.sin(), angles.cos()], dim=-1), (0, self.d_model - 2 * half))


def _positions(config: ModelConfig, max_len: int) -> nn.Module | None:
    if config.positions == "sinusoidal":
        return Sinusoidal(config.d_model)
    return nn.Embedding(max_len, config.d_model) if config.positions == "learned" else None


def _embed(model: nn.Module, idx: torch.Tensor, positions: nn.Module | None,
           mixing: TokenMixing | None) -> torch.Tensor:
    """Token embeddings ``(B, T, C)`` (times sqrt(d) under unit-scaling init), plus the token mixing and the
    positions where the model has them; with a start vector, ``(B, 1 + T, C)``, the start first."""
    tokens = model.tokens(idx)  # (B, T, C)
    start = getattr(model, "start", None)
    if start is not None:
        tokens = torch.cat([start.weight.expand(idx.shape[0], 1, -1), tokens], dim=1)  # (B, 1 + T, C)
    if model.config.init == "unit_scaling":
        tokens = tokens * math.sqrt(model.config.d_model)
    if mixing is not None:
        tokens = tokens + mixing(tokens)
    if positions is None:
        return tokens
    if isinstance(positions, nn.Embedding) and idx.shape[1] > model.max_len:
        raise ValueError(f"sequence of {idx.shape[1]} tokens exceeds the model's max_len={model.max_len}")
    return tokens + positions(torch.arange(tokens.shape[1], device=idx.device))


def _final_norm(config: ModelConfig) -> nn.Module:
    """A pre-norm stack ends with a LayerNorm; a post-norm block's output is normalised already."""
    return nn.LayerNorm(config.d_model) if config.norm_placement == "pre" else nn.Identity()


def _gpt2_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _unit_scaling_init(module: nn.Module) -> None:
    """Uniform unit scaling, fan-avg, gain 1 (Glorot's uniform) for matrices; embeddings normal(0, 1/d)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)


def initialise(model: nn.Module, config: ModelConfig, residual_projections: list[nn.Linear]) -> None:
    """``config.init`` over every matrix; GPT-2's also scales the residual output projections."""
    if config.init == "unit_scaling":
        model.apply(_unit_scaling_init)
        return
    model.apply(_gpt2_init)
    for projection in residual_projections:
        nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * config.num_layers))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig, *, vocab_size: int, max_len: int):
        super().__init__()
        self.config = config
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab_size, config.d_model)
        if config.bos:
            self.start = nn.Embedding(1, config.d_model)  # an embedding, so each init draws it as one
        self.positions = _positions(config, max_len + config.bos)
        self.mixing = _mixing(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.final_norm = _final_norm(config)
        self.head = nn.Linear(config.d_model, vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.tokens.weight  # Press & Wolf 2017, arXiv 1608.05859
        initialise(self, config, [layer for block in self.blocks  # block by block: the draws' order is the init
                                  for layer in (block.attn.out_proj, block.mlp.down if block.mlp else None)
                                  if layer is not None])

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return _embed(self, idx, self.positions, self.mixing)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` for token ids ``(B, T)`` (none for the start vector)."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x[:, self.config.bos:]))

    @staticmethod
    def split_batch(batch: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """``(arguments of forward, labels)`` of an ``lm`` task's batch ``(inputs, labels)``."""
        inputs, labels = batch
        return (inputs,), labels

    @torch.no_grad()
    def attention_maps(self, batch: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], bool]:
        """Per layer, the ``(B, H, T, T)`` attention matrix each block applies, and that it is causal; with a
        start vector ``(B, H, T, 1 + T)``: the token's rows, the start's key column first (a causal mask aligned
        to the end of the keys, as everywhere here)."""
        x = self.embed(batch[0])
        maps = []
        for block in self.blocks:
            maps.append(block.maps(x)[:, :, self.config.bos:])
            x = block(x)
        return maps, True

    @torch.no_grad()
    def value_norms(self, batch: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """Per layer, the ``(B, H, 1 + T)`` or ``(B, H, T)`` norms of the values self-attention reads (a start
        vector's first), the keys of :meth:`attention_maps`."""
        x, norms = self.embed(batch[0]), []
        for block in self.blocks:
            norms.append(block.value_norms(x))
            x = block(x)
        return norms

    @torch.no_grad()
    def output_ratios(self, batch: tuple[torch.Tensor, ...]) -> list[float]:
        """Per layer, :meth:`Block.output_ratio` of self-attention on ``batch``."""
        x, ratios = self.embed(batch[0]), []
        for block in self.blocks:
            ratios.append(float(block.output_ratio(x)))
            x = block(x)
        return ratios

    def aux_losses(self) -> dict[str, torch.Tensor]:
        return _sum_aux_losses(self.blocks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class EncoderDecoder(nn.Module):
    """Encoder (non-causal self-attention) and decoder (causal self-attention + cross-attention).

    Encoder and decoder self-attention use ``config.attention``; the
    cross-attention uses ``cross_attention`` (the same variant by default), so
    every registered variant can play each role, as ReLA uses it in all three
    (arXiv 2104.07012). Source and target share one vocabulary and embedding.
    """

    def __init__(self, config: ModelConfig, *, vocab_size: int, max_len: int, cross_attention: Any = None):
        super().__init__()
        self.config = config
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab_size, config.d_model)
        self.source_positions = _positions(config, max_len)
        self.target_positions = _positions(config, max_len)
        self.source_mixing, self.target_mixing = _mixing(config), _mixing(config)  # each stream its own
        self.encoder = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.encoder_norm = _final_norm(config)
        cross = config.attention if cross_attention is None else cross_attention
        self.decoder = nn.ModuleList(Block(config, cross) for _ in range(config.num_layers))
        self.final_norm = _final_norm(config)
        self.head = nn.Linear(config.d_model, vocab_size, bias=False)
        initialise(self, config, [])  # GPT-2's draws without the residual scaling, as this model always had

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        x = _embed(self, source, self.source_positions, self.source_mixing)
        for block in self.encoder:
            x = block(x, causal=False)
        return self.encoder_norm(x)  # (B, S, C)

    def forward(self, source: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` for decoder inputs ``(B, T)`` given the source ``(B, S)``."""
        memory = self.encode(source)
        x = _embed(self, inputs, self.target_positions, self.target_mixing)
        for block in self.decoder:
            x = block(x, memory)
        return self.head(self.final_norm(x))

    @staticmethod
    def split_batch(batch: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """``(arguments of forward, labels)`` of a ``seq2seq`` batch ``(source, inputs, labels, alignment)``."""
        source, inputs, labels, _ = batch
        return (source, inputs), labels

    @torch.no_grad()
    def attention_maps(self, batch: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], bool]:
        """Per decoder layer, the ``(B, H, T, S)`` cross-attention matrix (not causal: it sees the whole source)."""
        memory = self.encode(batch[0])
        x = _embed(self, batch[1], self.target_positions, self.target_mixing)
        maps = []
        for block in self.decoder:
            maps.append(block.maps(x, memory))
            x = block(x, memory)
        return maps, False

    @torch.no_grad()
    def output_ratios(self, batch: tuple[torch.Tensor, ...]) -> list[float]:
        """Per layer, encoder then decoder, :meth:`Block.output_ratio` of self-attention on ``batch``."""
        x, ratios = _embed(self, batch[0], self.source_positions, self.source_mixing), []
        for block in self.encoder:
            ratios.append(float(block.output_ratio(x, causal=False)))
            x = block(x, causal=False)
        memory = self.encoder_norm(x)
        y = _embed(self, batch[1], self.target_positions, self.target_mixing)
        for block in self.decoder:
            ratios.append(float(block.output_ratio(y, memory)))
            y = block(y, memory)
        return ratios

    def aux_losses(self) -> dict[str, torch.Tensor]:
        return _sum_aux_losses([*self.encoder, *self.decoder])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
