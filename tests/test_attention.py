"""The attention contract, checked for every registered variant.

Tests are parametrised over ``attention.names()``, so a new variant file is
tested without editing this one.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import assert_close

from experiments import attention
from experiments.config import ConfigError

NAMES = attention.names()
SHAPES = [(2, 2, 16, 8), (1, 3, 7, 4)]  # (B, H, T, D)


def shape_id(shape):
    return "B{}-H{}-T{}-D{}".format(*shape)


def qkv(shape, *, seed=0, dtype=torch.float64, tk=None, requires_grad=False):
    batch, heads, time, dim = shape
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, time, dim, generator=generator, dtype=dtype)
    k = torch.randn(batch, heads, tk or time, dim, generator=generator, dtype=dtype)
    v = torch.randn(batch, heads, tk or time, dim, generator=generator, dtype=dtype)
    return [t.requires_grad_(requires_grad) for t in (q, k, v)]


def call(name, q, k, v, *, causal, **overrides):
    """The variant's functional core with its default config's parameters."""
    variant = attention.get(name)
    params = dataclasses.asdict(attention.make_config(name))
    import inspect

    accepted = inspect.signature(variant.attend).parameters
    params = {key: value for key, value in {**params, **overrides}.items() if key in accepted}
    return variant.attend(q, k, v, causal=causal, **params), params


def test_registry_lists_the_three_variants():
    assert {"softmax", "linear", "rela"} <= set(NAMES)
    assert NAMES == sorted(NAMES)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="valid names are") as error:
        attention.get("bogus")
    for name in NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_config_key_is_an_error(name):
    with pytest.raises(ConfigError, match="unknown key"):
        attention.make_config(name, not_a_field=1)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips(name):
    config = attention.make_config(name)
    assert attention.config_from_dict(attention.config_to_dict(config)) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, dataclasses.fields(config)[0].name, None)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name, causal, shape):
    q, k, v = qkv(shape)
    out, _ = call(name, q, k, v, causal=causal)
    assert out.shape == shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_module_output_shape(name):
    module = attention.build_module(attention.make_config(name), d_model=16, num_heads=4)
    x = torch.randn(3, 11, 16)
    assert module(x).shape == (3, 11, 16)
    assert module.weights(x).shape == (3, 4, 11, 11)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("name", NAMES)
def test_causality_functional(name, shape):
    """Changing token t (its query, key and value) leaves outputs before t unchanged."""
    q, k, v = qkv(shape)
    before, _ = call(name, q, k, v, causal=True)
    t = shape[2] // 2
    for tensor in (q, k, v):
        tensor[:, :, t:] += 3.0
    after, _ = call(name, q, k, v, causal=True)
    assert torch.equal(before[:, :, :t], after[:, :, :t])
    assert not torch.allclose(before[:, :, t:], after[:, :, t:])


@pytest.mark.parametrize("name", NAMES)
def test_causality_module(name):
    """Through projections and output normalisation too."""
    torch.manual_seed(0)
    module = attention.build_module(attention.make_config(name), d_model=16, num_heads=2).double()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    before = module(x)
    x[:, 7] = torch.randn(2, 16, dtype=torch.float64)
    after = module(x)
    assert torch.equal(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7], after[:, 7])


@pytest.mark.parametrize("name", NAMES)
def test_seeded_module_is_deterministic(name):
    def build_and_run(seed):
        torch.manual_seed(seed)
        module = attention.build_module(attention.make_config(name), d_model=16, num_heads=2)
        return module(torch.randn(2, 9, 16))

    assert torch.equal(build_and_run(3), build_and_run(3))
    assert not torch.equal(build_and_run(3), build_and_run(4))


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("name", NAMES)
def test_weights_reproduce_attend(name, causal):
    variant = attention.get(name)
    if variant.weights is None:
        pytest.skip(f"{name} has no attention matrix")
    q, k, v = qkv((2, 2, 13, 8))
    out, params = call(name, q, k, v, causal=causal)
    import inspect

    accepted = inspect.signature(variant.weights).parameters
    matrix = variant.weights(q, k, causal=causal, **{key: val for key, val in params.items() if key in accepted})
    assert matrix.shape == (2, 2, 13, 13)
    if causal:
        assert torch.all(matrix.triu(diagonal=1) == 0), "weight on a future key"
    assert_close(matrix @ v, out, f"{name} weights @ v")


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("name", NAMES)
def test_attend_matches_reference_with_gradients(name, causal):
    variant = attention.get(name)
    q, k, v = qkv((2, 2, 10, 8), requires_grad=True)
    out, params = call(name, q, k, v, causal=causal)
    ref = variant.reference(q, k, v, causal=causal, **{key: val for key, val in params.items() if key != "form"})
    assert_close(out, ref, f"{name} output")
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), upstream)
    ref_grads = torch.autograd.grad(ref, (q, k, v), upstream)
    for label, g, r in zip("qkv", grads, ref_grads):
        assert_close(g, r, f"{name} d{label}")


@pytest.mark.parametrize("name", NAMES)
def test_causal_cross_block_sees_whole_cache(name):
    """Fewer queries than keys: query i sees keys j <= i + (Tk - Tq), as when decoding after a prompt."""
    q, k, v = qkv((1, 2, 12, 4), seed=1)
    full, _ = call(name, q, k, v, causal=True)
    tail, _ = call(name, q[:, :, -4:], k, v, causal=True)
    assert_close(tail, full[:, :, -4:], f"{name} last 4 queries")
