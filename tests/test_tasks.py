"""Every task generator: determinism, knob validation, knobs reaching the output, and each layout."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import synthetic
from experiments.config import ConfigError
from synthetic import IGNORE_INDEX, alignment, copying, memorisation, needle, selective_copying

TASKS = synthetic.names()
# A changed value for every knob of every task (besides the test-set fields), so that a knob that never
# reaches the generator fails here. Values are chosen so the config stays valid.
KNOB_CHANGES = {
    "bigram_backcopy": dict(vocab_size=24, seq_len=40, num_triggers=2, zipf_exponent=0.5, peakedness=2.5,
                            chain_seed=7),
    "mqar": dict(vocab_size=128, seq_len=96, num_kv_pairs=6, power_a=1.0, filler="blank", filler_may_collide=True),
    "ar": dict(vocab_size=32, seq_len=40, num_kv_pairs=5, filler="blank", filler_may_collide=True),
    "copying": dict(vocab_size=9, seq_len=70, train_min_len=3, train_max_len=12, test_min_len=5, test_max_len=20),
    "selective_copying": dict(vocab_size=9, region_len=20, num_tokens=6),
    "needle": dict(vocab_size=64, seq_len=200, depth=0.5, num_distractors=3, num_queries=2),
    "memorisation": dict(vocab_size=64, num_facts=30, key_tokens=2, seq_len=24, map_seed=3),
    "alignment": dict(vocab_size=20, source_len=7, reordering="reversal", swap_prob=0.2, fertility_prob=0.3,
                      lexicon_seed=5),
}
# Bases put conditional knobs in play (swap_prob needs local swaps, filler_may_collide random filler).
BASE = {"mqar": dict(vocab_size=64, seq_len=64, num_kv_pairs=4), "ar": dict(vocab_size=20, num_kv_pairs=4, filler="random"),
        "copying": dict(seq_len=70), "needle": dict(vocab_size=128, seq_len=128, num_distractors=2),
        "memorisation": dict(num_facts=20, seq_len=18),
        "alignment": dict(reordering="local_swaps")}


def base(name: str):
    return synthetic.make_config(name, **BASE.get(name, {}))


def draw(config, split="train", seed=0, n=32):
    return synthetic.generate(config, n, torch.Generator().manual_seed(seed), split=split)


def same(a, b) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


def test_every_task_has_knob_changes():
    assert set(KNOB_CHANGES) == set(TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_seeded_batches_are_deterministic(name):
    config = base(name)
    assert same(draw(config, seed=3), draw(config, seed=3))
    assert not same(draw(config, seed=3), draw(config, seed=4))
    assert same(synthetic.test_set(config), synthetic.test_set(config))


@pytest.mark.parametrize("name", TASKS)
def test_batch_shapes_and_label_convention(name):
    config = base(name)
    batch = draw(config)
    if synthetic.kind_of(config) == "lm":
        inputs, labels = batch
        assert inputs.shape == labels.shape == (32, config.seq_len)
    else:
        source, inputs, labels, gold = batch
        assert source.shape == (32, config.source_len) and inputs.shape == labels.shape == (32, config.seq_len)
        assert gold.shape == (32, config.seq_len, config.source_len) and gold.dtype == torch.bool
    assert ((labels == IGNORE_INDEX) | ((labels >= 0) & (labels < config.vocab_size))).all()
    assert (labels != IGNORE_INDEX).any(dim=1).all(), "every example asks something"
    assert (inputs >= 0).all() and (inputs < config.vocab_size).all()


@pytest.mark.parametrize("name", TASKS)
def test_every_knob_reaches_the_output(name):
    config = base(name)

    def both_splits(c):
        return draw(c, split="train") + draw(c, split="test")

    reference = both_splits(config)
    for knob, value in KNOB_CHANGES[name].items():
        if getattr(config, knob) == value:
            continue
        changed = dataclasses.replace(config, **{knob: value})
        assert not same(both_splits(changed), reference), f"{name}.{knob} does not change the output"


@pytest.mark.parametrize("name", TASKS)
def test_unknown_knob_is_rejected(name):
    with pytest.raises(ConfigError, match="unknown key"):
        synthetic.make_config(name, not_a_knob=1)


@pytest.mark.parametrize("name,params,constraint", [
    ("ar", dict(num_kv_pairs=20, seq_len=32), "seq_len >= 2\\*num_kv_pairs\\+1 = 41"),
    ("ar", dict(vocab_size=8, num_kv_pairs=4), "distinct keys need vocab_size >= 10"),
    ("copying", dict(seq_len=20, test_max_len=10), "seq_len >= 2\\*10\\+3 = 23"),
    ("copying", dict(train_min_len=5, train_max_len=3), "train_min_len <= train_max_len"),
    ("copying", dict(vocab_size=4), "vocab_size must be at least 5"),
    ("selective_copying", dict(num_tokens=40, region_len=32), "num_tokens <= region_len"),
    ("needle", dict(num_queries=2), "num_queries must be in \\[1, 1 \\+ num_distractors = 1\\]"),
    ("needle", dict(seq_len=6, num_distractors=2), "need seq_len >= 7"),
    ("needle", dict(depth=1.5), "depth must be in \\[0, 1\\]"),
    ("needle", dict(vocab_size=5), "leaves an empty filler, key or value range"),
    ("memorisation", dict(num_facts=200, vocab_size=256), "num_facts=200 distinct keys need .* >= 200, got 127"),
    ("memorisation", dict(seq_len=7), "seq_len must be a positive multiple of key_tokens \\+ 1 = 2"),
    ("alignment", dict(reordering="shuffle"), "choose from \\['identity', 'reversal', 'local_swaps', 'permutation'\\]"),
    ("alignment", dict(fertility_prob=1.5), "fertility_prob must be in \\[0, 1\\]"),
])
def test_impossible_configs_name_their_constraint(name, params, constraint):
    with pytest.raises(ConfigError, match=constraint):
        synthetic.make_config(name, **params)


# --- layouts ----------------------------------------------------------------------------------

def test_ar_asks_one_context_key_at_the_end():
    config = synthetic.make_config("ar", vocab_size=32, seq_len=20, num_kv_pairs=5, filler="random")
    inputs, labels = draw(config, n=200)
    for x, y in zip(inputs.tolist(), labels.tolist()):
        pairs = dict(zip(x[0:10:2], x[1:10:2]))
        assert [t for t, label in enumerate(y) if label != IGNORE_INDEX] == [19]
        assert y[19] == pairs[x[19]]
        assert not set(x[10:19]) & set(pairs), "filler avoids the keys"


def test_copying_layout_and_length_ranges():
    config = synthetic.make_config("copying", vocab_size=12, seq_len=45, train_min_len=2, train_max_len=5,
                                   test_min_len=15, test_max_len=20)
    for split, (low, high) in (("train", (2, 5)), ("test", (15, 20))):
        inputs, labels = draw(config, split=split, n=200)
        lengths = synthetic.slices(config, (inputs, labels))["length"]
        assert lengths.min() >= low and lengths.max() <= high and len(set(lengths.tolist())) > 1
        for x, y, n in zip(inputs.tolist(), labels.tolist(), lengths.tolist()):
            content = x[1:n + 1]
            assert x[0] == copying.BOS and x[n + 1] == copying.SEP and x[2 * n + 2] == copying.EOS
            assert x[n + 2:2 * n + 2] == content and all(t >= copying.FIRST_CONTENT for t in content)
            assert all(t == copying.PAD for t in x[2 * n + 3:])
            assert [t for t in y if t != IGNORE_INDEX] == content + [copying.EOS]


def test_selective_copying_targets_the_scattered_tokens_in_order():
    config = synthetic.make_config("selective_copying", region_len=16, num_tokens=5)
    inputs, labels = draw(config, n=100)
    for x, y in zip(inputs.tolist(), labels.tolist()):
        scattered = [t for t in x[:16] if t != selective_copying.BLANK]
        assert x[16:] == [selective_copying.MARKER] * 5
        assert y[16:] == scattered and all(t == IGNORE_INDEX for t in y[:16])


def test_needle_layout_depth_and_no_collisions():
    config = synthetic.make_config("needle", vocab_size=64, seq_len=103, depth=0.75, num_distractors=2, num_queries=3)
    (f0, f1), (k0, k1), (v0, v1) = needle._ranges(64)
    inputs, labels = draw(config, n=100)
    haystack = 100
    for x, y in zip(inputs.tolist(), labels.tolist()):
        keys_at = [t for t in range(haystack) if k0 <= x[t] < k1]
        assert len(keys_at) == 3 and all(v0 <= x[t + 1] < v1 for t in keys_at)
        assert all(f0 <= x[t] < f1 for t in range(haystack) if t not in keys_at and t - 1 not in keys_at)
        value_of = {x[t]: x[t + 1] for t in keys_at}
        assert x[haystack] == x[2 * (haystack // 2 * 3 // 4)], "the target sits at depth 0.75 and is asked first"
        assert y[haystack:] == [value_of[k] for k in x[haystack:]]
    uniform = draw(dataclasses.replace(config, depth=None), n=400)
    deciles = synthetic.slices(config, uniform)["depth_decile"]
    assert len(set(deciles.tolist())) == 10, "a uniform depth covers every decile"


def test_needle_generates_long_sequences_fast():
    import time

    config = synthetic.make_config("needle", seq_len=8192, num_distractors=8, num_queries=4)
    start = time.perf_counter()
    inputs, _ = draw(config, n=64)
    assert inputs.shape == (64, 8192)
    assert time.perf_counter() - start < 5.0  # a correctness guard against a Python loop over tokens


def test_memorisation_uses_one_fixed_table_and_labels_first_occurrences():
    config = synthetic.make_config("memorisation", vocab_size=32, num_facts=6, seq_len=20)
    keys, values = memorisation.fact_table(config)
    table = dict(zip(keys[:, 0].tolist(), values.tolist()))
    for split in ("train", "test"):
        inputs, labels = draw(config, split=split, n=100)
        for x, y in zip(inputs.tolist(), labels.tolist()):
            seen = set()
            for t in range(0, 20, 2):
                assert table[x[t]] == x[t + 1]
                assert y[t] == (IGNORE_INDEX if x[t] in seen else x[t + 1])
                seen.add(x[t])
    other = dataclasses.replace(config, map_seed=config.map_seed + 1)
    assert memorisation.fact_table(other)[0].tolist() != keys.tolist()


@pytest.mark.parametrize("reordering", alignment.REORDERINGS)
def test_alignment_targets_follow_lexicon_and_gold_links(reordering):
    config = synthetic.make_config("alignment", vocab_size=20, source_len=6, reordering=reordering,
                                   fertility_prob=0.4)
    first, second, _ = alignment.lexicons(config)
    source, inputs, labels, gold = draw(config, n=100)
    for s, x, y, g in zip(source.tolist(), inputs.tolist(), labels.tolist(), gold.tolist()):
        words = [t for t in y if t != IGNORE_INDEX]
        assert words[-1] == alignment.EOS and x[0] == alignment.BOS and x[1:len(words)] == words[:-1]
        origins = []
        for t, word in enumerate(words[:-1]):
            linked = [j for j, on in enumerate(g[t]) if on]
            assert len(linked) == 1
            j = linked[0]
            assert word in (int(first[s[j]]), int(second[s[j]]))
            origins.append(j)
        assert not any(g[len(words) - 1]), "EOS has no gold link"
        assert sorted(set(origins)) == list(range(6)), "every source word is translated"
        if reordering == "identity":
            assert origins == sorted(origins)
        if reordering == "reversal":
            assert origins == sorted(origins, reverse=True)


def test_memorisation_with_two_token_keys():
    config = synthetic.make_config("memorisation", vocab_size=16, num_facts=20, key_tokens=2, seq_len=12)
    keys, values = memorisation.fact_table(config)
    assert keys.shape == (20, 2) and len({tuple(k) for k in keys.tolist()}) == 20
    assert keys.min() >= 1 and keys.max() <= 7 and values.min() >= 8
    table = {tuple(k): v for k, v in zip(keys.tolist(), values.tolist())}
    inputs, labels = draw(config, n=50)
    for x, y in zip(inputs.tolist(), labels.tolist()):
        seen = set()
        for t in range(0, 12, 3):
            key = (x[t], x[t + 1])
            assert table[key] == x[t + 2] and y[t] == IGNORE_INDEX and y[t + 2] == IGNORE_INDEX
            assert y[t + 1] == (IGNORE_INDEX if key in seen else x[t + 2])
            seen.add(key)


@pytest.mark.parametrize("name", TASKS)
def test_every_task_states_a_chance_level_and_a_learned_threshold_halfway_to_its_ceiling(name):
    config = base(name)
    level, top = synthetic.chance(config), synthetic.ceiling(config)
    assert 0 < level < top <= 1
    assert synthetic.learned_threshold(config) == pytest.approx(level + 0.5 * (top - level))
    assert (top < 1) == (name == "bigram_backcopy")  # the one task whose labels are partly random draws


def test_mqar_chance_is_what_a_guess_among_the_example_values_scores():
    config = synthetic.make_config("mqar", vocab_size=64, seq_len=64, num_kv_pairs=8)
    inputs, labels = draw(config, n=4000)
    values = inputs[:, 1:2 * 8:2]  # (B, N): the context's values
    pick = torch.randint(8, labels.shape, generator=torch.Generator().manual_seed(1))
    guess = values.gather(1, pick)  # a uniformly drawn context value at every position
    asked = labels != IGNORE_INDEX
    accuracy = float((guess == labels)[asked].double().mean())
    assert accuracy == pytest.approx(synthetic.chance(config), abs=0.01)


def test_memorisation_chance_is_the_most_frequent_value_of_the_table():
    config = synthetic.make_config("memorisation", vocab_size=16, num_facts=40, key_tokens=2, seq_len=18)
    _, values = memorisation.fact_table(config)
    inputs, labels = draw(config, n=4000)
    asked = labels != IGNORE_INDEX
    accuracy = float((labels[asked] == values.bincount().argmax()).double().mean())
    assert accuracy == pytest.approx(synthetic.chance(config), abs=0.02)
    assert synthetic.chance(config) > 1 / 8  # 40 facts over 8 values: some value repeats


def test_a_task_without_a_chance_level_cannot_register():
    config = dataclasses.make_dataclass("C", [], bases=(synthetic.TaskConfig,), frozen=True)
    with pytest.raises(ValueError, match="chance level"):
        synthetic.register(synthetic.Task(name="no_chance", config=config, generate=lambda *a, **k: None,
                                          summary="s"))


def test_a_task_whose_config_has_no_test_set_cannot_register():
    config = dataclasses.make_dataclass("C", [("seq_len", int, 8)], frozen=True)
    with pytest.raises(ValueError, match="must subclass synthetic.TaskConfig"):
        synthetic.register(synthetic.Task(name="no_test_set", config=config, generate=lambda *a, **k: None,
                                          summary="s", chance=lambda c: 0.5))
    assert "no_test_set" not in synthetic.names()


@pytest.mark.parametrize("name", synthetic.names())
def test_every_task_config_refuses_an_empty_test_set(name):
    with pytest.raises(ConfigError, match="num_test_examples must be at least 1"):
        synthetic.make_config(name, num_test_examples=0)
