"""Helpers the sweep modules share, and the recipe every trained sweep starts from.

The recipe (quick profile, two CPU cores) was found by measurement, not
guessed: with learned absolute positions alone, softmax attention sat at the
guess among the example's values (MQAR, T=64, 8 pairs: 0.15 after 3000
steps); a token shift before attention (``model.token_mixing``; see
:class:`experiments.model.TokenMixing`) lets every variant form recall in a
few hundred steps. The learning rate of each variant is the one the
committed learning-rate search chose (``lr_search`` sweep; its table is
``paper_figs/lr_search/quick.csv`` and ``tests/test_recipe.py`` checks that
:data:`LEARNING_RATES` still matches it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import synthetic
from experiments import attention
from experiments.model import ModelConfig
from experiments.runs import RunConfig
from experiments.train import TrainConfig

LR_TABLE = Path(__file__).resolve().parents[2] / "paper_figs" / "lr_search" / "quick.csv"

# The recall model: the same for every variant of a sweep.
MIXING = {"token_mixing": "shift"}
RECALL_MODEL = dict(d_model=32, num_heads=2, **MIXING)  # head_dim 16: linear attention's feature dimension

# Peak learning rate per searched variant: the best of the committed search (most seeds learned, then the
# fewest steps to the target, then the highest accuracy).
LEARNING_RATES = {"softmax": 3e-3, "rela_g": 3e-3, "reluformer": 3e-3, "relu": 3e-3, "linear": 3e-3}
# Variants not searched take the rate of the searched variant closest to them; a variant added since the
# search (in neither table) takes softmax's until `make lr-search` includes it.
FAMILY = {"sparsemax": "softmax", "entmax15": "softmax", "softmax_ln": "softmax", "sigmoid": "softmax",
          "rela_i": "rela_g", "relu_len": "reluformer", "norm_linear": "linear", "inline": "linear",
          "ssmax": "softmax", "softmax1": "softmax", "softpick": "softmax", "stick_breaking": "softmax"}


def learning_rate(name: str) -> float:
    """The recipe's learning rate for an attention variant."""
    return LEARNING_RATES.get(FAMILY.get(name, name), LEARNING_RATES["softmax"])


def make_config(task: tuple[str, dict[str, Any]], variant: str | tuple[str, dict[str, Any]], *, seed: int,
                train: dict[str, Any], **model: Any) -> RunConfig:
    """One RunConfig from ``(task name, knobs)``, a variant name or ``(name, params)``, and model fields.

    ``train`` without an ``lr`` takes the recipe's learning rate for the variant.
    """
    name, params = (variant, {}) if isinstance(variant, str) else variant
    train = {"lr": learning_rate(name), **train}
    return RunConfig(
        task=synthetic.make_config(task[0], **task[1]),
        model=ModelConfig(**model, attention=attention.make_config(name, **params)),
        train=TrainConfig(**train, seed=seed),
    )
