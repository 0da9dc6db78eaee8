"""The recipe's learning rates are the ones the committed learning-rate search chose; token mixing is causal."""

from __future__ import annotations

import csv

import pytest
import torch

from experiments import sweeps
from experiments.model import ModelConfig, TokenMixing, Transformer
from experiments.sweeps import _common, lr_search


def committed_rows() -> list[dict[str, str]]:
    with open(_common.LR_TABLE, newline="") as handle:
        return list(csv.DictReader(handle))


def test_recipe_rates_match_the_committed_search():
    rows = committed_rows()
    assert {r["profile"] for r in rows} == {"quick"}
    assert lr_search.best_rates(rows) == _common.LEARNING_RATES


def test_the_committed_search_is_the_quick_profile_of_the_sweep():
    configs = sweeps.configs("lr_search", "quick")
    listed = {(r["model.attention.name"], float(r["train.lr"])) for r in committed_rows()}
    assert listed == {(c.attention_name, c.train.lr) for c in configs}


def test_best_rates_prefers_learning_then_fewer_steps_then_accuracy():
    def row(lr, steps, acc, learned):
        return {"model.attention.name": "v", "train.lr": str(lr), "steps_run": str(steps),
                "test_accuracy": str(acc), "learned": str(learned)}
    assert lr_search.best_rates([row(1e-3, 100, 0.2, 0), row(3e-3, 900, 0.9, 1)]) == {"v": 3e-3}
    assert lr_search.best_rates([row(1e-3, 300, 0.99, 1), row(3e-3, 200, 0.96, 1)]) == {"v": 3e-3}
    assert lr_search.best_rates([row(1e-3, 200, 0.99, 1), row(3e-3, 200, 0.96, 1)]) == {"v": 1e-3}
    assert "did not learn" in lr_search.markdown([row(1e-3, 100, 0.2, 0), row(3e-3, 900, 0.9, 1)])


def test_every_registered_variant_gets_the_recipe_rate_of_its_family():
    from experiments import attention

    task = ("mqar", dict(vocab_size=16, seq_len=16, num_kv_pairs=2))
    for name in attention.names():  # a new variant without a family here fails
        config = _common.make_config(task, name, seed=0, train=dict(steps=10, warmup_steps=1), d_model=16, num_heads=2)
        assert config.train.lr == _common.LEARNING_RATES[_common.FAMILY.get(name, name)], name  # no fallback


@pytest.mark.parametrize("kind", ["shift", "conv"])
def test_token_mixing_is_causal_and_reaches_the_next_position(kind):
    torch.manual_seed(0)
    mixing = TokenMixing(kind, d_model=8, width=3)
    x = torch.randn(2, 10, 8, requires_grad=True)
    out = mixing(x)
    assert out.shape == x.shape
    out[:, 5].sum().backward()
    touched = (x.grad.abs().sum(dim=(0, 2)) > 0).nonzero().flatten().tolist()
    assert max(touched) <= 5, "a position read a later token"
    assert 4 in touched, "the previous token did not reach the position"
    if kind == "shift":
        assert torch.equal(out[:, 1:], x[:, :-1]) and torch.equal(out[:, 0], torch.zeros_like(out[:, 0]))


def test_token_mixing_changes_the_model_only_when_asked():
    plain = Transformer(ModelConfig(d_model=16, num_heads=2), vocab_size=12, max_len=8)
    shifted = Transformer(ModelConfig(d_model=16, num_heads=2, token_mixing="shift"), vocab_size=12, max_len=8)
    conv = Transformer(ModelConfig(d_model=16, num_heads=2, token_mixing="conv", conv_width=3), vocab_size=12,
                       max_len=8)
    assert plain.mixing is None and shifted.num_parameters() == plain.num_parameters()
    assert conv.num_parameters() == plain.num_parameters() + 16 * 3  # one kernel of width 3 per channel
    shifted.load_state_dict(plain.state_dict())
    idx = torch.randint(12, (2, 8))
    assert not torch.allclose(plain(idx), shifted(idx))
    # a causal model: changing the last token leaves every earlier logit unchanged
    other = idx.clone()
    other[:, -1] = (other[:, -1] + 1) % 12
    for model in (shifted, conv):
        assert torch.allclose(model(idx)[:, :-1], model(other)[:, :-1])
