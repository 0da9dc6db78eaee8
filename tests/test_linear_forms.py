"""The linear-attention family: forms agree, decoding agrees, and fla-core's naive functions agree."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import assert_close

from experiments import attention
from experiments.attention import _linear, linear
from experiments.attention._features import FEATURE_MAPS

LINEAR_FAMILY = [n for n in attention.names() if issubclass(attention.get(n).module, _linear.LinearFamilyModule)]
MAPS = sorted(FEATURE_MAPS)


def test_the_family_is_registered():
    assert {"linear", "norm_linear", "inline"} <= set(LINEAR_FAMILY)


@pytest.mark.parametrize("feature_map", MAPS)
@pytest.mark.parametrize("name", LINEAR_FAMILY)
def test_chunked_and_recurrent_equal_parallel_outputs_and_gradients(name, feature_map):
    variant = attention.get(name)
    generator = torch.Generator().manual_seed(0)
    shape = (2, 2, 13, 4)  # 13 is not a multiple of the chunk size 5
    q, k, v = (torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(3))
    upstream = torch.randn(shape, generator=generator, dtype=torch.float64)
    outputs = {form: variant.attend(q, k, v, causal=True, feature_map=feature_map, form=form, chunk_size=5)
               for form in variant.forms_on("cpu")}
    grads = {form: torch.autograd.grad(out, (q, k, v), upstream) for form, out in outputs.items()}
    for form in ("chunked", "recurrent"):
        assert_close(outputs[form], outputs["parallel"], f"{name}/{feature_map} {form} output")
        for label, g, ref in zip("qkv", grads[form], grads["parallel"]):
            assert_close(g, ref, f"{name}/{feature_map} {form} d{label}")


@pytest.mark.parametrize("feature_map", MAPS)
@pytest.mark.parametrize("name", LINEAR_FAMILY)
def test_forms_carry_the_same_state_outputs_final_states_and_gradients(name, feature_map):
    """fla's contract: from a state of 6 earlier tokens, every form gives the recurrence's outputs, final
    state and gradients (through q, k, v and the initial state), and 6 + 7 tokens in two calls equal 13
    in one."""
    variant = attention.get(name)
    generator = torch.Generator().manual_seed(0)
    shape = (2, 2, 13, 4)
    q, k, v = (torch.randn(*shape, generator=generator, dtype=torch.float64) for _ in range(3))
    options = dict(causal=True, feature_map=feature_map, chunk_size=5)
    _, before = variant.attend(q[:, :, :6], k[:, :, :6], v[:, :, :6], output_final_state=True, **options)
    whole, whole_state = variant.attend(q, k, v, output_final_state=True, **options)
    tensors = {key: value.detach().requires_grad_() for key, value in before.items() if key != "t"}
    rest = [t[:, :, 6:].clone().requires_grad_() for t in (q, k, v)]
    results = {}
    for form in variant.forms_on("cpu"):
        out, final = variant.attend(*rest, initial_state={**tensors, "t": before["t"]}, output_final_state=True,
                                    form=form, **options)
        final_tensors = [final[key] for key in tensors]
        loss = (out * torch.cos(out)).sum() + sum((f * torch.sin(f)).sum() for f in final_tensors)
        grads = torch.autograd.grad(loss, [*rest, *tensors.values()])
        results[form] = out, final, grads
    reference_out, reference_final, reference_grads = results["recurrent"]
    assert reference_final["t"] == 13 == whole_state["t"]
    assert_close(reference_out, whole[:, :, 6:], f"{name}/{feature_map}: two calls against one")
    for key in tensors:
        assert_close(reference_final[key], whole_state[key], f"{name}/{feature_map}: final {key}, two calls")
    for form in ("parallel", "chunked"):
        out, final, grads = results[form]
        assert_close(out, reference_out, f"{name}/{feature_map} {form} output")
        for key in tensors:
            assert_close(final[key], reference_final[key], f"{name}/{feature_map} {form} final {key}")
        for label, g, ref in zip(["q", "k", "v", *tensors], grads, reference_grads):
            assert_close(g, ref, f"{name}/{feature_map} {form} d{label}")


@pytest.mark.parametrize("feature_map,expected", [
    ("elu1", 4), ("relu", 4), ("relu2", 4), ("taylor2", 1 + 4 + 16), ("cosformer", 8), ("performer", 4),
    ("dpfp", 8), ("identity", 4)])
def test_feature_dimension_is_reported(feature_map, expected):
    mod = attention.build_module(attention.make_config("linear", feature_map=feature_map), d_model=8, num_heads=2)
    assert mod.feature_dim == expected
    q = torch.randn(1, 2, 3, 4)
    assert mod.features(q, torch.arange(3)).shape == (1, 2, 3, expected)


def test_taylor2_features_give_the_second_order_taylor_kernel():
    features = FEATURE_MAPS["taylor2"](4, None)
    q, k = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    s = (q * k).sum(-1) / 2.0  # q.k / sqrt(4)
    pos = torch.arange(5)
    assert_close((features(q, pos) * features(k, pos)).sum(-1), 1 + s + s ** 2 / 2, "taylor2 kernel")


def test_performer_features_estimate_the_softmax_kernel():
    config = attention.make_config("linear", feature_map="performer", num_features=4096, feature_seed=1)
    features = FEATURE_MAPS["performer"](4, config)
    generator = torch.Generator().manual_seed(0)
    q, k = 0.5 * torch.randn(6, 4, generator=generator), 0.5 * torch.randn(6, 4, generator=generator)
    pos = torch.arange(6)
    estimate = (features(q, pos) * features(k, pos)).sum(-1)
    exact = torch.exp((q * k).sum(-1) / 2.0)
    assert_close(estimate, exact, "performer estimate", tolerance="random_features")


def test_cosformer_reweights_by_the_distance():
    config = attention.make_config("linear", feature_map="cosformer", cos_max_len=10)
    features = FEATURE_MAPS["cosformer"](3, config)
    q, k = torch.rand(1, 3), torch.rand(1, 3)  # positive, so relu is the identity
    near = (features(q, torch.tensor([5])) * features(k, torch.tensor([4]))).sum()
    far = (features(q, torch.tensor([9])) * features(k, torch.tensor([0]))).sum()
    import math

    base = (q * k).sum()
    assert_close(near, base * math.cos(math.pi / 2 * 1 / 10), "distance 1")
    assert_close(far, base * math.cos(math.pi / 2 * 9 / 10), "distance 9")
    with pytest.raises(ValueError, match="cos_max_len"):
        features(q, torch.tensor([10]))


def test_recurrent_form_is_causal_only_in_order_not_in_api():
    """Non-causal attention uses the associative form whatever the form field says."""
    q, k, v = (torch.randn(1, 1, 6, 3, dtype=torch.float64) for _ in range(3))
    assert_close(linear.attend(q, k, v, causal=False, form="recurrent"),
                 linear.attend(q, k, v, causal=False, form="parallel"), "non-causal")


# --- an independent oracle: fla-core's pure-torch reference functions -------------------------

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # fla warns that Triton has no GPU here; only its pure-torch functions are used
    from fla.ops.linear_attn import naive as fla_naive  # noqa: E402


@pytest.mark.parametrize("feature_map", ["elu1", "relu2", "dpfp"])
def test_linear_matches_fla_naive_recurrent(feature_map):
    config = attention.make_config("linear", feature_map=feature_map, eps=1e-10)
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 40, 8, generator=generator) for _ in range(3))  # (B, H, T, D)
    features = _linear.build_features(config, 8)
    fq, fk = _linear.featurize(features, q, k)
    # fla's layout is (B, T, H, D); normalize=True gives phi(q)S / phi(q)z with eps 1e-10, the scale cancels
    expected, _ = fla_naive.naive_recurrent_linear_attn(fq.transpose(1, 2), fk.transpose(1, 2), v.transpose(1, 2),
                                                        normalize=True)
    ours = linear.attend(q, k, v, causal=True, **dataclasses.asdict(config))
    assert_close(ours, expected.transpose(1, 2), f"linear/{feature_map} against fla's naive recurrence")


def test_chunked_form_matches_fla_naive_chunk():
    generator = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, 128, 8, generator=generator) for _ in range(3))
    config = attention.make_config("linear", form="chunked", chunk_size=64, eps=1e-10)
    fq, fk = _linear.featurize(_linear.build_features(config, 8), q, k)
    expected = fla_naive.naive_chunk_linear_attn(fq.transpose(1, 2), fk.transpose(1, 2), v.transpose(1, 2),
                                                 normalize=True)
    ours = linear.attend(q, k, v, causal=True, **dataclasses.asdict(config))
    assert_close(ours, expected.transpose(1, 2), "chunked against fla's naive chunks")


@pytest.mark.parametrize("feature_map", sorted(FEATURE_MAPS))
def test_the_feature_dimension_the_memory_estimate_reads_is_the_one_the_map_builds(feature_map):
    config = attention.make_config("linear", feature_map=feature_map)
    assert config.feature_dim(16) == _linear.build_features(config, 16).dim
