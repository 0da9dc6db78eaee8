"""Property tests: random knob values either build a valid batch or raise ConfigError, never anything else.

Every field of every task config gets values from a wide range (negative,
zero, huge, wrong choices); the test counts the inputs it tried and the ones
rejected, and ``conftest.py`` prints the totals at the end of the test run.
"""

from __future__ import annotations

import dataclasses
import typing
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synthetic
from experiments.config import ConfigError, field_types

TRIED: Counter = Counter()


def knob_strategy(cls) -> st.SearchStrategy:
    hints = field_types(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in ("num_test_examples", "test_seed"):
            continue
        hint = hints[f.name]
        optional = typing.get_origin(hint) in (typing.Union, __import__("types").UnionType)
        base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        if "choices" in f.metadata:
            strategy = st.sampled_from(list(f.metadata["choices"]) + ["not-a-choice"])
        elif base is bool:
            strategy = st.booleans()
        elif base is int:
            strategy = st.integers(min_value=-3, max_value=300)
        elif base is float:
            strategy = st.floats(min_value=-1.0, max_value=2.0, allow_nan=False)
        else:
            strategy = st.just(f.default)
        if optional:
            strategy = st.none() | strategy
        fields[f.name] = strategy
    return st.fixed_dictionaries({}, optional=fields)


def check_batch(config, batch) -> None:
    if synthetic.kind_of(config) == "lm":
        inputs, labels = batch
    else:
        _, inputs, labels, gold = batch
        assert gold.dtype == torch.bool and gold.shape[:2] == inputs.shape
    assert inputs.shape == labels.shape and inputs.shape[1] == config.seq_len
    assert inputs.dtype == torch.int64 and (inputs >= 0).all() and (inputs < config.vocab_size).all()
    asked = labels != synthetic.IGNORE_INDEX
    assert asked.any(dim=1).all(), "every example asks something"
    assert (labels[asked] >= 0).all() and (labels[asked] < config.vocab_size).all()


@pytest.mark.parametrize("name", synthetic.names())
def test_random_knobs_build_a_valid_batch_or_raise_config_error(name):
    cls = synthetic.get(name).config

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)
    @given(knobs=knob_strategy(cls), seed=st.integers(0, 2**31 - 1))
    def prop(knobs, seed):
        TRIED["tried"] += 1
        try:
            config = synthetic.make_config(name, num_test_examples=4, **knobs)
        except ConfigError as error:
            TRIED["rejected"] += 1
            assert str(error), "an empty error message"
            return
        if config.seq_len > 4096:
            return  # valid but large; generation of long sequences is tested elsewhere
        for split in synthetic.SPLITS:
            check_batch(config, synthetic.generate(config, 3, torch.Generator().manual_seed(seed), split=split))

    prop()
