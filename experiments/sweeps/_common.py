"""Helpers the sweep modules share, and the recipe every trained sweep starts from.

The recipe puts a token shift before attention (``model.token_mixing``;
see :class:`experiments.model.TokenMixing`): with learned absolute positions
alone, softmax attention on MQAR sits at the guess among the example's
values for longer than a CPU budget has, and with the shift every variant
forms recall in a few hundred steps (the ``mqar_mixing`` sweep compares the
two). The learning rate of each variant is the one the committed
learning-rate search picks (``lr_search`` sweep; its table is
``paper_figs/lr_search/quick.md``, from ``quick.csv``, and
``tests/test_recipe.py`` checks that :data:`LEARNING_RATES` matches it).
:data:`RECALL` is the whole recipe on the task and schedule of that search;
``python -m experiments.run --task mqar`` starts from it unless asked not to
(``--recipe none``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import synthetic
from experiments import attention
from experiments.config import ConfigError
from experiments.model import ModelConfig
from experiments.runs import RunConfig
from experiments.train import TrainConfig

LR_TABLE = Path(__file__).resolve().parents[2] / "paper_figs" / "lr_search" / "quick.csv"

# The recall model: the same for every variant of a sweep.
MIXING = {"token_mixing": "shift"}
RECALL_MODEL = dict(d_model=32, num_heads=2, **MIXING)  # head_dim 16: linear attention's feature dimension
# The task and schedule of the learning-rate search's quick profile; runs stop at 0.95 test accuracy.
RECALL_TASK = dict(vocab_size=64, seq_len=64, num_kv_pairs=8, filler="blank", num_test_examples=500)
RECALL_TRAIN = dict(steps=1200, warmup_steps=100, eval_every=50, target_accuracy=0.95)

# Peak learning rate per searched variant: the best of the committed search (most seeds learned, then the
# fewest steps to the target, then the highest accuracy).
LEARNING_RATES = {"softmax": 3e-3, "rela_g": 3e-3, "reluformer": 3e-3, "relu": 3e-3, "linear": 3e-3,
                  "sigmoid": 1e-3, "relu_len": 1e-2, "norm_linear": 1e-2, "stick_breaking": 3e-3}
# Variants not searched take the rate of the searched variant closest to them; a variant in neither table
# takes softmax's until `make lr-search` includes it.
FAMILY = {"sparsemax": "softmax", "entmax15": "softmax", "softmax_ln": "softmax", "rela_i": "rela_g",
          "inline": "linear", "ssmax": "softmax", "softmax1": "softmax", "softpick": "softmax"}


# A variant that carries position information of its own runs without a position embedding: stick-breaking's
# weights fall with distance (Tan et al. 2024, arXiv 2410.17980, train it with none).
VARIANT_MODEL = {"stick_breaking": {"positions": "none"}}


def learning_rate(name: str) -> float:
    """The recipe's learning rate for an attention variant (its registered name, not an alias)."""
    return LEARNING_RATES.get(FAMILY.get(name, name), LEARNING_RATES["softmax"])


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Settings measured to work on one task: sections of a run config, spelled as in sweep files."""

    name: str
    task: str  # the registered task the settings were measured on
    task_fields: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]  # without ``lr``: each variant takes its own (:func:`learning_rate`)
    summary: str

    def sections(self, attention_name: str) -> dict[str, dict[str, Any]]:
        """``{"task": ..., "model": ..., "train": ...}`` for a registered variant name (not an alias)."""
        return {"task": dict(self.task_fields), "model": {**self.model, **VARIANT_MODEL.get(attention_name, {})},
                "train": {"lr": learning_rate(attention_name), **self.train}}


RECALL = Recipe(name="recall", task="mqar", task_fields=RECALL_TASK, model=RECALL_MODEL, train=RECALL_TRAIN,
                summary="the lr_search sweep's quick setting: vocabulary 64, length 64, 8 pairs, blank filler, "
                        "500 test examples; width 32, 2 heads, a token shift before attention; the searched "
                        "learning rate, at most 1200 steps, stop at 0.95 test accuracy; stick-breaking without a "
                        "position embedding")
NO_RECIPE = "none"  # every field at its own default
RECIPES = {recipe.name: recipe for recipe in (RECALL,)}


def recipe_names() -> list[str]:
    return [NO_RECIPE, *sorted(RECIPES)]


def default_recipe(task_name: str) -> str:
    """The recipe a run of ``task_name`` starts from: the one measured on that task, else ``none``."""
    return next((name for name, recipe in RECIPES.items() if recipe.task == task_name), NO_RECIPE)


def recipe_sections(recipe_name: str, task_name: str, attention_name: str) -> dict[str, dict[str, Any]]:
    """The run-config sections a recipe sets (empty for ``none``); a recipe measured on another task is
    refused, since its task fields belong to that task's config."""
    if recipe_name == NO_RECIPE:
        return {"task": {}, "model": {}, "train": {}}
    if recipe_name not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe_name!r}; valid names are {recipe_names()}")
    recipe = RECIPES[recipe_name]
    if recipe.task != task_name:
        raise ConfigError(f"recipe {recipe_name!r} was measured on task {recipe.task!r}, not {task_name!r}; "
                          f"use --recipe {NO_RECIPE} for {task_name!r}")
    return recipe.sections(attention_name)


def make_config(task: tuple[str, dict[str, Any]], variant: str | tuple[str, dict[str, Any]], *, seed: int,
                train: dict[str, Any], **model: Any) -> RunConfig:
    """One RunConfig from ``(task name, knobs)``, a variant name or ``(name, params)``, and model fields.

    ``train`` without an ``lr`` takes the recipe's learning rate for the variant.
    """
    name, params = (variant, {}) if isinstance(variant, str) else variant
    train = {"lr": learning_rate(name), **train}
    model = {**VARIANT_MODEL.get(name, {}), **model}
    return RunConfig(
        task=synthetic.make_config(task[0], **task[1]),
        model=ModelConfig(**model, attention=attention.make_config(name, **params)),
        train=TrainConfig(**train, seed=seed),
    )
