"""Bigram-Backcopy: layout, copies, the chain's statistics, chance and ceiling against draws, knobs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import synthetic
from experiments.config import ConfigError
from synthetic import bigram_backcopy
from synthetic.bigram_backcopy import BOS, BigramBackcopyConfig, trigger_positions

SMALL = dict(vocab_size=16, seq_len=64)  # large draws stay fast


def draw(config: BigramBackcopyConfig, num_examples: int = 64, seed: int = 0, split: str = "train"):
    return synthetic.generate(config, num_examples, torch.Generator().manual_seed(seed), split=split)


def test_worked_example_of_the_docstring():
    config = BigramBackcopyConfig(vocab_size=8, seq_len=12, num_triggers=2)
    inputs, labels = draw(config, num_examples=1, seed=5)
    assert bigram_backcopy.chain(config).is_trigger.nonzero().flatten().tolist() == [2, 4]
    assert inputs[0].tolist() == [0, 5, 2, 5, 2, 5, 7, 5, 5, 7, 4, 7]
    assert labels[0].tolist() == [5, 2, 5, 2, 5, 7, 5, 5, 7, 4, 7, 3]
    assert trigger_positions(config, inputs)[0].nonzero().flatten().tolist() == [2, 4, 10]
    assert torch.equal(draw(config, num_examples=4, seed=5)[0][0], inputs[0]), "an example does not depend on the batch"


@pytest.mark.parametrize("params", [dict(), dict(num_triggers=5, peakedness=4.0), dict(zipf_exponent=0.0)],
                         ids=["default", "k5-peaked", "uniform-unigram"])
def test_after_every_trigger_comes_the_token_before_it(params):
    config = BigramBackcopyConfig(**SMALL, **params)
    inputs, labels = draw(config, num_examples=500)
    triggers = trigger_positions(config, inputs)  # (B, T)
    assert not triggers[:, :2].any(), "BOS and the token after it are never triggers"
    assert triggers.sum() > 1000
    before = torch.roll(inputs, 1, dims=1)  # (B, T): the token before each position (position 0 is never a trigger)
    assert torch.equal(labels[triggers], before[triggers])
    assert not triggers[:, 1:][triggers[:, :-1]].any(), "a trigger never follows a trigger"
    assert not bigram_backcopy.chain(config).is_trigger[labels[triggers]].any(), "copies are never triggers"


def test_labels_are_the_next_tokens_and_every_position_is_asked():
    inputs, labels = draw(BigramBackcopyConfig(**SMALL))
    assert torch.equal(labels[:, :-1], inputs[:, 1:])
    assert (labels != synthetic.IGNORE_INDEX).all()


def test_bos_opens_every_example_and_appears_nowhere_else():
    config = BigramBackcopyConfig(**SMALL)
    for split in synthetic.SPLITS:
        inputs, labels = draw(config, num_examples=500, split=split)
        assert (inputs[:, 0] == BOS).all()
        assert (inputs[:, 1:] != BOS).all() and (labels != BOS).all()


def test_bigram_positions_follow_the_transition_matrix():
    """Every row's empirical successor frequencies, BOS's (the first token) included, within 5 standard errors."""
    config = BigramBackcopyConfig(**SMALL)
    transition, _, is_trigger = bigram_backcopy.chain(config)
    inputs, labels = draw(config, num_examples=4000)
    bigram = ~is_trigger[inputs]  # (B, T): the label is drawn from the current token's row
    counts = torch.zeros_like(transition)
    counts.index_put_((inputs[bigram], labels[bigram]), torch.ones(int(bigram.sum()), dtype=counts.dtype),
                      accumulate=True)
    seen = counts.sum(dim=1, keepdim=True)  # (V, 1)
    rows = seen.squeeze(1) >= 500
    assert rows.sum() >= config.vocab_size - config.num_triggers - 2, "most non-trigger rows are well sampled"
    frequency, p = counts[rows] / seen[rows], transition[rows]
    error = (p * (1 - p) / seen[rows]).sqrt()
    assert ((frequency - p).abs() <= 5 * error + 1e-3).all()
    assert (counts[:, BOS] == 0).all() and (counts[BOS][is_trigger] == 0).all()


def _empirical_levels(config: BigramBackcopyConfig, num_examples: int = 4000) -> tuple[float, float, float]:
    """Measured on a draw: the best current-token-only guess read off the draw's own counts; the matrix's
    bigram argmax with, after each trigger, its most common predecessor in the draw; the oracle (bigram
    argmax, copies right)."""
    transition, _, is_trigger = bigram_backcopy.chain(config)
    inputs, labels = draw(config, num_examples=num_examples, seed=11)
    counts = torch.zeros_like(transition)
    counts.index_put_((inputs.flatten(), labels.flatten()), torch.ones(labels.numel(), dtype=counts.dtype),
                      accumulate=True)
    from_counts = float(counts.max(dim=1).values.sum() / labels.numel())
    followers = torch.zeros_like(transition)  # (V, V): how often token a stands right before a trigger tau
    before, triggers = torch.roll(inputs, 1, dims=1), is_trigger[inputs]
    followers.index_put_((before[triggers], inputs[triggers]), torch.ones(int(triggers.sum()), dtype=counts.dtype),
                         accumulate=True)
    guess = torch.where(is_trigger, followers.argmax(dim=0), transition.argmax(dim=1))  # (V,)
    from_table = float((guess[inputs] == labels).double().mean())
    oracle = torch.where(triggers, before, transition.argmax(dim=1)[inputs])
    return from_counts, from_table, float((oracle == labels).double().mean())


LEVEL_CASES = {"default": dict(), "k1-peaked": dict(num_triggers=1, peakedness=3.0),
               "uniform-unigram": dict(zipf_exponent=0.0, chain_seed=4)}


@pytest.mark.parametrize("params", list(LEVEL_CASES.values()), ids=list(LEVEL_CASES))
def test_chance_and_ceiling_are_what_draws_score(params):
    config = BigramBackcopyConfig(**SMALL, **params)
    chance, ceiling = bigram_backcopy.chance(config), bigram_backcopy.ceiling(config)
    from_counts, from_table, oracle = _empirical_levels(config)
    assert from_counts == pytest.approx(chance, abs=0.01)
    assert from_table == pytest.approx(chance, abs=0.01)
    assert oracle == pytest.approx(ceiling, abs=0.01)
    assert 0 < chance < ceiling < 1
    assert synthetic.chance(config) == chance


def test_chance_beats_the_bigram_successor_guess_at_triggers():
    """Guessing the trigger's own bigram successor after it scores below chance: the predecessor guess is
    what an attention-free model learns, so chance is not the naive level."""
    config = BigramBackcopyConfig(**SMALL)
    transition, _, _ = bigram_backcopy.chain(config)
    inputs, labels = draw(config, num_examples=2000, seed=5)
    naive = float((transition.argmax(dim=1)[inputs] == labels).double().mean())
    assert naive < bigram_backcopy.chance(config) - 0.02


def test_default_levels_are_those_the_docstring_states():
    config = BigramBackcopyConfig()
    assert bigram_backcopy.chance(config) == pytest.approx(0.440, abs=5e-4)
    assert bigram_backcopy.ceiling(config) == pytest.approx(0.644, abs=5e-4)
    assert synthetic.ceiling(config) == bigram_backcopy.ceiling(config)
    assert synthetic.learned_threshold(config) == pytest.approx(0.542, abs=5e-4)  # halfway to the ceiling
    transition, _, is_trigger = bigram_backcopy.chain(config)
    unigram = bigram_backcopy._stationary(transition[1:, 1:])
    assert is_trigger.sum() == 3 and torch.equal(is_trigger[1:], unigram >= unigram.topk(3).values[-1])
    assert float(unigram.topk(3).values.sum()) == pytest.approx(0.27, abs=5e-3)  # "27% of the stationary mass"


def test_slices_count_the_trigger_positions():
    config = BigramBackcopyConfig(**SMALL)
    inputs, labels = draw(config)
    counts = synthetic.slices(config, (inputs, labels))["triggers"]
    assert counts.shape == (64,) and torch.equal(counts, trigger_positions(config, inputs).sum(dim=1))
    assert len(set(counts.tolist())) > 3


def test_seeded_batches_and_the_chain_are_deterministic():
    config = BigramBackcopyConfig(**SMALL)
    assert all(torch.equal(a, b) for a, b in zip(draw(config, seed=3), draw(config, seed=3)))
    assert not torch.equal(draw(config, seed=3)[0], draw(config, seed=4)[0])
    bigram_backcopy.chain.cache_clear()
    first = bigram_backcopy.chain(config).transition.clone()
    bigram_backcopy.chain.cache_clear()
    assert torch.equal(bigram_backcopy.chain(config).transition, first)
    other = dataclasses.replace(config, chain_seed=1)
    assert not torch.equal(bigram_backcopy.chain(other).transition, first)


KNOBS = dict(vocab_size=24, seq_len=40, num_triggers=2, zipf_exponent=0.5, peakedness=2.5, chain_seed=7)


@pytest.mark.parametrize("knob", KNOBS)
def test_every_knob_reaches_the_output(knob):
    config = BigramBackcopyConfig(**SMALL)
    changed = dataclasses.replace(config, **{knob: KNOBS[knob]})
    reference, other = draw(config), draw(changed)
    assert reference[0].shape != other[0].shape or not torch.equal(reference[0], other[0]), knob


@pytest.mark.parametrize("params,constraint", [
    (dict(num_triggers=0), "num_triggers must be at least 1, got 0"),
    (dict(vocab_size=5, num_triggers=3), "num_triggers=3 triggers, BOS and two other content tokens need "
                                         "vocab_size >= 6, got vocab_size=5"),
    (dict(vocab_size=5000), "vocab_size must be at most 4096"),
    (dict(seq_len=2), "seq_len must be at least 3"),
    (dict(zipf_exponent=-0.5), "zipf_exponent must be in \\[0, 4\\]"),
    (dict(peakedness=11.0), "peakedness must be in \\[0, 10\\]"),
    (dict(num_test_examples=0), "num_test_examples must be at least 1"),
], ids=["no-trigger", "vocab-too-small", "vocab-too-large", "too-short", "zipf", "peakedness", "empty-test-set"])
def test_impossible_configs_name_their_field(params, constraint):
    with pytest.raises(ConfigError, match=constraint):
        synthetic.make_config("bigram_backcopy", **params)


def test_active_rows_are_the_trigger_positions_and_the_rest_are_dormant():
    config = BigramBackcopyConfig(seq_len=64)
    batch = synthetic.generate(config, 16, torch.Generator().manual_seed(3))
    active = synthetic.active_rows(config, batch)
    inputs, labels = batch
    assert active.shape == inputs.shape and active.any() and not active.all()
    # an active row's label is the token before it; a dormant row's label follows the chain
    before = torch.cat([inputs[:, :1], inputs[:, :-1]], dim=1)
    assert torch.equal(labels[active], before[active])
    assert not active[:, 0].any()  # BOS is never a trigger
