"""A small decoder-only transformer whose attention is chosen from the registry.

Pre-norm blocks (``x + attn(LN(x))``, then ``x + mlp(LN(x))``) as in GPT-2
(Radford et al. 2019) and nanoGPT, learned absolute positions, GPT-2's
initialisation (normal(0, 0.02), residual output projections scaled by
``1/sqrt(2 * num_layers)``) and, optionally, tied input and output
embeddings. The attention is any registered variant, built from its frozen config, so the
model never names a variant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from experiments import attention
from experiments.config import ConfigError, param, require


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    d_model: int = param(64, "residual stream width")
    num_layers: int = param(2, "transformer blocks")
    num_heads: int = param(1, "attention heads per block (d_model must divide evenly)")
    mlp: bool = param(True, "include the MLP sub-block in each block")
    mlp_ratio: int = param(4, "MLP hidden width as a multiple of d_model")
    tie_embeddings: bool = param(False, "share the input embedding and the output projection")
    attention: Any = dataclasses.field(
        default_factory=lambda: attention.make_config("softmax"),
        metadata={"help": "frozen config of a registered attention variant"},
    )

    def __post_init__(self):
        require(self.d_model >= 1, f"d_model must be positive, got {self.d_model}")
        require(self.num_layers >= 1, f"num_layers must be positive, got {self.num_layers}")
        require(self.num_heads >= 1, f"num_heads must be positive, got {self.num_heads}")
        require(self.d_model % self.num_heads == 0,
                f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        require(self.mlp_ratio >= 1, f"mlp_ratio must be positive, got {self.mlp_ratio}")
        attention.name_of(self.attention)  # raises ConfigError for a non-attention config

    def to_dict(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["attention"] = attention.config_to_dict(self.attention)
        return fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"ModelConfig: unknown key(s) {unknown}; valid keys are {valid}")
        if "attention" in data:
            data["attention"] = attention.config_from_dict(data["attention"])
        return cls(**data)


class MLP(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(d_model, hidden)
        self.down = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.d_model)
        self.attn = attention.build_module(config.attention, d_model=config.d_model, num_heads=config.num_heads)
        self.mlp_norm = nn.LayerNorm(config.d_model) if config.mlp else None
        self.mlp = MLP(config.d_model, config.mlp_ratio * config.d_model) if config.mlp else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig, *, vocab_size: int, max_len: int):
        super().__init__()
        self.config = config
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab_size, config.d_model)
        self.positions = nn.Embedding(max_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.tokens.weight  # Press & Wolf 2017, arXiv 1608.05859
        self.apply(self._init)
        residual_std = 0.02 / math.sqrt(2 * config.num_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.out_proj.weight, std=residual_std)
            if block.mlp is not None:
                nn.init.normal_(block.mlp.down.weight, std=residual_std)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        time = idx.shape[1]
        if time > self.max_len:
            raise ValueError(f"sequence of {time} tokens exceeds the model's max_len={self.max_len}")
        positions = torch.arange(time, device=idx.device)
        return self.tokens(idx) + self.positions(positions)  # (B, T, C)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` for token ids ``(B, T)``."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, the ``(B, H, T, T)`` attention matrix each block applies."""
        x = self.embed(idx)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.weights(block.attn_norm(x)))
            x = block(x)
        return maps

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """Auxiliary losses of the last forward pass, summed over blocks by name (e.g. ReLUFormer's)."""
        total: dict[str, torch.Tensor] = {}
        for block in self.blocks:
            for name, value in block.attn.aux_losses().items():
                total[name] = total[name] + value if name in total else value
        return total

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
