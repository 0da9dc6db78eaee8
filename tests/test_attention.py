"""The attention contract, checked for every registered variant.

Tests are parametrised over ``attention.names()``, so a new variant file is
tested without editing this one.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_close, qkv, shape_id

from experiments.attention.base import cache_bytes
from experiments.attention._linear import LinearFamilyModule

from experiments import attention
from experiments.attention import accepted_params
from experiments.config import ConfigError

NAMES = attention.names()
SHAPES = [(2, 2, 16, 8), (1, 3, 7, 4)]  # (B, H, T, D)


def call(name, q, k, v, *, causal, **overrides):
    """The variant's functional core with its default config's parameters."""
    variant = attention.get(name)
    params = accepted_params(variant.attend, {**dataclasses.asdict(attention.make_config(name)), **overrides})
    return variant.attend(q, k, v, causal=causal, **params), params


def module(name, *, d_model=16, num_heads=2, seed=0, **params):
    torch.manual_seed(seed)
    return attention.build_module(attention.make_config(name, **params), d_model=d_model, num_heads=num_heads).double()


def test_registry_lists_the_variants_the_papers_compare():
    expected = {"softmax", "softmax_ln", "linear", "norm_linear", "inline", "relu", "rela_g", "rela_i",
                "reluformer", "relu_len", "sigmoid", "sparsemax", "entmax15"}
    assert expected <= set(NAMES)
    assert NAMES == sorted(NAMES)
    assert attention.get("rela").name == "rela_g"  # alias
    assert "rela" not in NAMES and "rela" in attention.names(include_aliases=True)


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
def test_the_module_class_is_written_out_in_the_variant_file(name):
    """A traceback names a class a grep finds: no class made with ``type()``."""
    module_class = attention.get(name).module
    assert issubclass(module_class, attention.AttentionModule)
    source = Path(sys.modules[module_class.__module__].__file__).read_text(encoding="utf-8")
    assert f"class {module_class.__name__}(" in source


@pytest.mark.parametrize("name", NAMES)
def test_module_output_shape(name):
    mod = module(name, num_heads=4)
    x = torch.randn(3, 11, 16, dtype=torch.float64)
    assert mod(x).shape == (3, 11, 16)
    assert mod.weights(x).shape == (3, 4, 11, 11)
    context = torch.randn(3, 5, 16, dtype=torch.float64)  # cross-attention: 11 queries, 5 keys
    assert mod(x, context, causal=False).shape == (3, 11, 16)
    assert mod.weights(x, context, causal=False).shape == (3, 4, 11, 5)


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
    mod = module(name)
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    before = mod(x)
    x[:, 7] = torch.randn(2, 16, dtype=torch.float64)
    after = mod(x)
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
    matrix = variant.weights(q, k, causal=causal, **accepted_params(variant.weights, params))
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
    ref = variant.reference(q, k, v, causal=causal, **accepted_params(variant.reference, params))
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


@pytest.mark.parametrize("name", NAMES)
def test_cross_attention_shapes(name):
    q, _, _ = qkv((2, 2, 6, 4))
    _, k, v = qkv((2, 2, 9, 4), seed=1)
    out, _ = call(name, q, k, v, causal=False)
    assert out.shape == (2, 2, 6, 4) and torch.isfinite(out).all()


def decode(mod, x, pieces):
    """Feed ``x`` through ``mod`` in pieces of the given lengths, carrying the state; outputs, states."""
    state, outs, states = None, [], []
    for start, end in zip(pieces, pieces[1:]):
        out, state = mod(x[:, start:end], initial_state=state, output_final_state=True)
        outs.append(out)
        states.append(state)
    return torch.cat(outs, dim=1), states


@pytest.mark.parametrize("name", NAMES)
def test_decoding_one_token_at_a_time_equals_the_full_forward(name):
    mod = module(name)
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    full, final = mod(x, output_final_state=True)
    assert_close(mod(x), full, f"{name}: asking for the state changes the output")
    steps, states = decode(mod, x, list(range(11)))
    assert_close(steps, full, f"{name} decode")
    sizes = [cache_bytes(state) for state in states]
    assert sizes[-1] > 0 and cache_bytes(final) == sizes[-1]
    assert final.keys() == states[-1].keys()
    for key, value in final.items():
        if isinstance(value, torch.Tensor):
            assert_close(states[-1][key], value, f"{name} final state {key}")
        else:
            assert states[-1][key] == value, f"{name} final state {key}"
    if isinstance(mod, LinearFamilyModule):
        assert len(set(sizes)) == 1, "a linear-attention state does not grow with length"
    else:
        assert sizes[-1] == 10 * sizes[0], "a key-value cache grows by one token per step"


@pytest.mark.parametrize("name", NAMES)
def test_a_prompt_in_pieces_equals_the_full_forward(name):
    """Prefill 4 tokens, decode 1, then a piece of 5: the state carries everything before each piece."""
    mod = module(name)
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    pieces, _ = decode(mod, x, [0, 4, 5, 10])
    assert_close(pieces, mod(x), f"{name} pieces")


@pytest.mark.parametrize("name", NAMES)
def test_a_state_is_refused_where_it_means_nothing(name):
    mod = module(name)
    x = torch.randn(1, 3, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="causal self-attention"):
        mod(x, causal=False, output_final_state=True)
    with pytest.raises(ValueError, match="causal self-attention"):
        mod(x, torch.randn(1, 4, 16, dtype=torch.float64), output_final_state=True)


@pytest.mark.parametrize("name", NAMES)
def test_cache_bytes_counts_the_real_tensors(name):
    mod = module(name, d_model=16, num_heads=2)
    _, state = mod(torch.randn(3, 1, 16, dtype=torch.float64), output_final_state=True)
    batch, heads, head_dim, fp64 = 3, 2, 8, 8
    if isinstance(mod, LinearFamilyModule):  # S (F x Dh) and z (F) per head, plus sum v for InLine
        per_head = mod.feature_dim * head_dim + mod.feature_dim + (head_dim if mod.value_sums else 0)
        expected = batch * heads * per_head * fp64
    else:  # one key and one value per head after one token
        expected = 2 * batch * heads * head_dim * fp64
    assert cache_bytes(state) == expected


@pytest.mark.parametrize("name", NAMES)
def test_module_gradients_are_finite(name):
    mod = module(name)
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    mod(x).square().sum().backward()
    grads = [p.grad for p in mod.parameters()] + [x.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads[:-1])


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name, causal):
    q, k, v = qkv((1, 2, 5, 3), seed=2, requires_grad=True)
    variant = attention.get(name)
    params = accepted_params(variant.attend, dataclasses.asdict(attention.make_config(name)))
    assert torch.autograd.gradcheck(lambda a, b, c: variant.attend(a, b, c, causal=causal, **params), (q, k, v))
