"""MQAR generator: layout, labels, knob validation, and knobs that reach the output."""

from __future__ import annotations

import pytest
import torch

import synthetic
from experiments.config import ConfigError
from synthetic.mqar import MQARConfig, generate


def draw(config: MQARConfig, num_examples: int = 64, seed: int = 0):
    return generate(config, num_examples, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("filler", ["blank", "random"])
@pytest.mark.parametrize("vocab_size,seq_len,pairs", [(32, 32, 4), (64, 64, 16), (20, 40, 9)],
                         ids=["V32-T32-N4", "V64-T64-N16", "V20-T40-N9"])
def test_layout_and_labels(vocab_size, seq_len, pairs, filler):
    config = MQARConfig(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=pairs, filler=filler)
    inputs, labels = draw(config)
    assert inputs.shape == labels.shape == (64, seq_len)
    assert inputs.dtype == labels.dtype == torch.int64
    half = vocab_size // 2
    for x, y in zip(inputs.tolist(), labels.tolist()):
        keys, values = x[0:2 * pairs:2], x[1:2 * pairs:2]
        assert len(set(keys)) == pairs and all(1 <= key < half for key in keys)
        assert len(set(values)) == pairs and all(half <= value < vocab_size for value in values)
        assert all(label == synthetic.IGNORE_INDEX for label in y[:2 * pairs]), "no label inside the context"
        asked = [t for t, label in enumerate(y) if label != synthetic.IGNORE_INDEX]
        assert len(asked) == pairs, "every key is queried exactly once"
        assert all((t - 2 * pairs) % 2 == 0 for t in asked), "queries sit at even offsets after the context"
        pair_of = dict(zip(keys, values))
        assert sorted(x[t] for t in asked) == sorted(keys)
        assert all(y[t] == pair_of[x[t]] for t in asked), "label is the queried key's value"
        rest = [x[t] for t in range(2 * pairs, seq_len) if t not in asked]
        if filler == "blank":
            assert all(token == 0 for token in rest)
        else:
            assert not set(rest) & set(keys), "random filler never repeats a key"
            assert all(0 <= token < vocab_size for token in rest)


def test_random_filler_covers_the_vocabulary_except_keys():
    config = MQARConfig(vocab_size=16, seq_len=64, num_kv_pairs=3, filler="random")
    inputs, labels = draw(config, num_examples=256)
    seen = set()
    for x, y in zip(inputs.tolist(), labels.tolist()):
        keys = set(x[0:6:2])
        fill = {x[t] for t in range(6, 64) if y[t] == synthetic.IGNORE_INDEX}
        assert not fill & keys
        seen |= fill
    assert seen == set(range(16))


def test_filler_may_collide_allows_keys_in_the_filler():
    config = MQARConfig(vocab_size=8, seq_len=64, num_kv_pairs=3, filler="random", filler_may_collide=True)
    inputs, labels = draw(config)
    collisions = sum(
        len({x[t] for t in range(6, 64) if y[t] == synthetic.IGNORE_INDEX} & set(x[0:6:2]))
        for x, y in zip(inputs.tolist(), labels.tolist())
    )
    assert collisions > 0


def test_power_law_puts_queries_early():
    """a = 0.01 concentrates query slots near the context; a = 1 is uniform."""
    def mean_query_position(power_a):
        config = MQARConfig(vocab_size=64, seq_len=256, num_kv_pairs=4, power_a=power_a, filler="blank")
        _, labels = draw(config, num_examples=512)
        return (labels != synthetic.IGNORE_INDEX).nonzero()[:, 1].double().mean().item()

    skewed, uniform = mean_query_position(0.01), mean_query_position(1.0)
    assert uniform > 110  # uniform over slots: mean near the middle of 8..254
    assert skewed < uniform - 40


def test_same_seed_same_batch_other_seed_other_batch():
    config = MQARConfig(vocab_size=32, seq_len=32, num_kv_pairs=4)
    assert all(torch.equal(a, b) for a, b in zip(draw(config, seed=5), draw(config, seed=5)))
    assert not torch.equal(draw(config, seed=5)[0], draw(config, seed=6)[0])


def test_fixed_test_set_comes_from_its_own_seed():
    config = MQARConfig(vocab_size=32, seq_len=32, num_kv_pairs=4, num_test_examples=50)
    first, second = synthetic.test_set(config), synthetic.test_set(config)
    assert first[0].shape == (50, 32)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    other = synthetic.test_set(MQARConfig(vocab_size=32, seq_len=32, num_kv_pairs=4, num_test_examples=50, test_seed=7))
    assert not torch.equal(first[0], other[0])
    assert synthetic.tensor_hash(*first) == synthetic.tensor_hash(*second) != synthetic.tensor_hash(*other)


@pytest.mark.parametrize("params,constraint", [
    (dict(vocab_size=16, num_kv_pairs=8, seq_len=64), "distinct keys need vocab_size >= 18"),
    (dict(vocab_size=64, num_kv_pairs=9, seq_len=32), "seq_len >= 4\\*num_kv_pairs = 36"),
    (dict(num_kv_pairs=0), "num_kv_pairs must be at least 1"),
    (dict(power_a=0.0), "power_a must be positive"),
    (dict(filler="zeros"), "choose from \\['blank', 'random'\\]"),
    (dict(vocab_size=2), "vocab_size must be at least 4"),
], ids=["vocab-too-small", "too-many-pairs", "no-pairs", "power-a", "filler", "tiny-vocab"])
def test_impossible_configs_name_their_constraint(params, constraint):
    with pytest.raises(ConfigError, match=constraint):
        MQARConfig(**params)


def test_unknown_key_is_rejected_not_dropped():
    with pytest.raises(ConfigError, match="unknown key.*num_pairs"):
        synthetic.make_config("mqar", num_pairs=4)


def test_registry():
    assert "mqar" in synthetic.names()
    with pytest.raises(ConfigError, match="valid names are .*'mqar'"):
        synthetic.get("nope")
