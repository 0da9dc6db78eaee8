"""Every efficient form equals its reference, over the registry's variants.

Element-wise variants (the ReLU family and sigmoid): materialised,
blockwise (custom backward, no T x T matrix held) and fused (Triton; on
CPU in the interpreter, fp32). Linear family: parallel, chunked and
recurrent forms, and the dispatch to fla's kernels on CUDA.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from experiments import attention
from experiments.attention import _elementwise, _linear, accepted_params
from experiments.attention._elementwise import elementwise_attention
from experiments.config import ConfigError

ELEMENTWISE = [name for name in attention.names() if "blockwise" in attention.get(name).forms]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FUSED = _elementwise.fused_available(torch.device(DEVICE))


def test_the_elementwise_variants_are_the_relu_family_and_sigmoid():
    assert sorted(ELEMENTWISE) == ["rela_g", "rela_i", "relu", "relu_len", "reluformer", "sigmoid"]


def qkv(tq, tk, d, dv, *, dtype, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, t, e, generator=gen, dtype=dtype).to(device).requires_grad_()
            for t, e in ((tq, d), (tk, d), (tk, dv))]


def outputs_and_grads(fn, tensors, seed=1):
    out = fn(*tensors)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(out)
    return [out, *torch.autograd.grad(out, tensors, grad)]


def variant_fns(name, form, **extra):
    variant = attention.get(name)
    params = dataclasses.asdict(attention.make_config(name, **extra))
    attend_params = accepted_params(variant.attend, {**params, "form": form, "block_size": 32})
    reference_params = accepted_params(variant.reference, params)
    return (lambda c: (lambda q, k, v: variant.attend(q, k, v, causal=c, **attend_params)),
            lambda c: (lambda q, k, v: variant.reference(q, k, v, causal=c, **reference_params)))


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", [(70, 70, 24, 24), (33, 100, 16, 40)])  # blocks that do not divide T; Tq < Tk
def test_blockwise_equals_the_reference(name, causal, shape):
    tensors = qkv(*shape, dtype=torch.float64)
    attend, reference = variant_fns(name, "blockwise")
    for got, want in zip(outputs_and_grads(attend(causal), tensors), outputs_and_grads(reference(causal), tensors)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not FUSED, reason="needs Triton (CUDA, or TRITON_INTERPRET=1 on CPU)")
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("causal", [True, False])
def test_fused_equals_the_reference(name, causal):
    tensors = qkv(70, 70, 24, 24, dtype=torch.float32, device=DEVICE)
    attend, reference = variant_fns(name, "fused")
    exact = [t.detach().double().requires_grad_() for t in tensors]
    want = outputs_and_grads(reference(causal), exact)
    for got, ref in zip(outputs_and_grads(attend(causal), tensors), want):
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not FUSED, reason="needs Triton (CUDA, or TRITON_INTERPRET=1 on CPU)")
@pytest.mark.parametrize("shape", [(33, 100, 16, 40), (1, 65, 64, 64), (130, 130, 64, 32)])
@pytest.mark.parametrize("modes", [("relu", "none", "none"), ("sigmoid", "constant", "none"),
                                   ("relu", "none", "count")])
def test_the_fused_kernel_handles_ragged_shapes_and_every_epilogue(shape, modes):
    activation, bias_mode, row_mode = modes
    kwargs = dict(activation=activation, bias_mode=bias_mode, bias=-1.5, row_mode=row_mode, scale=0.3)
    tensors = qkv(*shape, dtype=torch.float32, device=DEVICE)
    exact = [t.detach().double().requires_grad_() for t in tensors]
    for causal in (True, False):
        want = outputs_and_grads(lambda q, k, v: elementwise_attention(q, k, v, causal=causal, form="materialised",
                                                                       **kwargs), exact)
        got = outputs_and_grads(lambda q, k, v: elementwise_attention(q, k, v, causal=causal, form="fused",
                                                                      **kwargs), tensors)
        for a, b in zip(got, want):
            torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 Triton dots are only right on a GPU")
def test_fused_bf16_on_cuda_is_close_to_fp32():
    tensors = qkv(512, 512, 64, 64, dtype=torch.float32, device="cuda")
    half = [t.detach().bfloat16().requires_grad_() for t in tensors]
    fn = lambda c: (lambda q, k, v: elementwise_attention(q, k, v, causal=c, row_mode="count", form="fused"))  # noqa: E731
    for a, b in zip(outputs_and_grads(fn(True), half), outputs_and_grads(fn(True), tensors)):
        torch.testing.assert_close(a.float(), b, rtol=3e-2, atol=3e-2)


def largest_saved(fn, tensors) -> int:
    """Elements of the largest tensor autograd keeps for the backward of ``fn``."""
    sizes = [0]

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*tensors)
    out.sum().backward()
    return max(sizes)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_blockwise_training_holds_no_length_squared_matrix(name):
    t, d = 512, 16
    tensors = qkv(t, t, d, d, dtype=torch.float32)
    attend, _ = variant_fns(name, "blockwise")
    materialised, _ = variant_fns(name, "materialised")
    assert largest_saved(materialised(True), tensors) >= 2 * 3 * t * t  # the check can see a T x T matrix
    assert largest_saved(attend(True), tensors) <= 2 * 3 * t * d


def test_auto_materialises_short_sequences_and_goes_blockwise_for_long_ones():
    q = torch.zeros(1, 1, 64, 8)
    assert _elementwise.resolve_form("auto", q, 64) == "materialised"
    long = torch.zeros(1, 1, 2048, 8)
    assert _elementwise.resolve_form("auto", long, 2048) == "blockwise"


def test_bad_forms_and_modes_name_the_choices():
    q, k, v = qkv(8, 8, 4, 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="valid values are"):
        elementwise_attention(q, k, v, causal=True, form="flash")
    with pytest.raises(ValueError, match="valid values are"):
        elementwise_attention(q, k, v, causal=True, activation="gelu")
    with pytest.raises(ConfigError, match="form"):
        attention.make_config("relu", form="flash")
    with pytest.raises(ConfigError, match="block_size"):
        attention.make_config("relu", block_size=0)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_modules_give_the_same_output_in_every_cpu_form(name):
    torch.manual_seed(0)
    x = torch.randn(2, 40, 32)
    outs = {}
    for form in ("materialised", "blockwise"):
        torch.manual_seed(1)
        module = attention.build_module(attention.make_config(name, form=form, block_size=16), d_model=32, num_heads=4)
        outs[form] = module(x)
    torch.testing.assert_close(outs["blockwise"], outs["materialised"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["linear", "norm_linear", "inline"])
def test_linear_family_chunked_and_recurrent_equal_parallel_in_modules(name):
    x = torch.randn(2, 45, 32, generator=torch.Generator().manual_seed(0))
    outs = {}
    for form in attention.get(name).forms:
        torch.manual_seed(1)
        module = attention.build_module(attention.make_config(name, form=form, chunk_size=16), d_model=32,
                                        num_heads=4)
        outs[form] = module(x)
    torch.testing.assert_close(outs["chunked"], outs["parallel"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs["recurrent"], outs["parallel"], rtol=1e-5, atol=1e-5)


def test_the_fla_fast_path_is_off_for_cpu_tensors():
    assert not _linear.fla_chunk_available(torch.zeros(1, 1, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fla's kernels need CUDA")
def test_fla_chunked_equals_the_torch_chunked_form_on_cuda():
    pytest.importorskip("fla.ops.linear_attn")
    gen = torch.Generator().manual_seed(0)
    fq, fk = (torch.rand(2, 3, 256, 64, generator=gen).cuda().requires_grad_() for _ in range(2))
    v = torch.randn(2, 3, 256, 64, generator=gen).cuda().requires_grad_()
    assert _linear.fla_chunk_available(fq)
    state = _linear.empty_state(fq, v)
    fast = _linear._fla_chunked(fq, fk, v)
    slow = _linear._chunked(fq, fk, v, state, 64)[:2]
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)
    grads_fast = torch.autograd.grad(fast[0].sum() + fast[1].sum(), (fq, fk, v))
    grads_slow = torch.autograd.grad(slow[0].sum() + slow[1].sum(), (fq, fk, v))
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)
