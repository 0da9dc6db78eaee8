"""Every efficient form equals its reference, over the registry's variants.

Element-wise variants (the ReLU family and sigmoid): materialised,
blockwise (custom backward, no T x T matrix held) and fused (Triton; on
CPU in the interpreter, fp32). The blockwise form and every launch of the
fused kernels write into output and gradient buffers filled with NaN, so a
tile left unwritten fails the comparison instead of reading as 0. Linear
family: parallel, chunked and recurrent forms, and fla's chunk kernel
(``fla_chunk``) on CUDA.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import assert_close, qkv, shape_id

from experiments import attention
from experiments.attention import _elementwise, _elementwise_spec, _linear, accepted_params, linear
from experiments.attention._elementwise import elementwise_attention
from experiments.attention.base import causal_mask
from experiments.config import ConfigError

ELEMENTWISE = [name for name in attention.names() if "blockwise" in attention.get(name).forms]
LINEAR_FAMILY = [name for name in attention.names() if "chunked" in attention.get(name).forms]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FUSED = _elementwise.fused_available(torch.device(DEVICE))
NAN = float("nan")


def test_the_elementwise_variants_are_the_relu_family_and_sigmoid():
    assert sorted(ELEMENTWISE) == ["rela_g", "rela_i", "relu", "relu_len", "reluformer", "sigmoid"]


@pytest.fixture
def poisoned_blocks(monkeypatch):
    """The blockwise form's output and gradient buffers allocated full of NaN; yields the shapes allocated."""
    allocated = []

    def nan_filled(shape, like):
        allocated.append(tuple(shape))
        return like.new_full(shape, NAN)

    monkeypatch.setattr(_elementwise, "_empty", nan_filled)
    return allocated


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
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", [(2, 3, 70, 70, 24, 24), (2, 3, 33, 100, 16, 40)],  # blocks that do not
                         ids=shape_id)                                                # divide T; Tq < Tk
def test_blockwise_equals_the_reference(name, causal, shape, poisoned_blocks):
    tensors = qkv(shape, requires_grad=True)
    attend, reference = variant_fns(name, "blockwise")
    got = outputs_and_grads(attend(causal), tensors)
    assert sorted(poisoned_blocks) == sorted(tuple(t.shape) for t in got), "every buffer came from _empty"
    for what, a, b in zip(("o", "dq", "dk", "dv"), got, outputs_and_grads(reference(causal), tensors)):
        assert_close(a, b, f"{name} {what}", tolerance="fp64_blocks")


@pytest.mark.skipif(not FUSED, reason="needs Triton (CUDA, or TRITON_INTERPRET=1 on CPU)")
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_fused_equals_the_reference(name, causal):
    tensors = qkv((2, 3, 70, 24), dtype=torch.float32, device=DEVICE, requires_grad=True)
    attend, reference = variant_fns(name, "fused")
    exact = [t.detach().double().requires_grad_() for t in tensors]
    want = outputs_and_grads(reference(causal), exact)
    for what, got, ref in zip(("o", "dq", "dk", "dv"), outputs_and_grads(attend(causal), tensors), want):
        assert_close(got.double(), ref, f"{name} {what}", tolerance="fp32_against_fp64")


def launched(q, k, v, grad, **modes):
    """``o, dq, dk, dv`` from the fused kernels' launches, each written into a buffer full of NaN."""
    from experiments.attention import _elementwise_triton as fused

    out = q.new_full((*q.shape[:-1], v.shape[-1]), NAN)
    fused.forward_launch(q, k, v, out, **modes)()
    dq, dk, dv = (torch.full_like(t, NAN) for t in (q, k, v))
    for launch in fused.backward_launches(q, k, v, grad, dq, dk, dv, **modes):
        launch()
    return out, dq, dk, dv


@pytest.mark.skipif(not FUSED, reason="needs Triton (CUDA, or TRITON_INTERPRET=1 on CPU)")
@pytest.mark.parametrize("shape", [(2, 3, 33, 100, 16, 40), (2, 3, 1, 65, 64, 64), (2, 3, 130, 130, 64, 32)],
                         ids=shape_id)
@pytest.mark.parametrize("modes", [("relu", "none", "none"), ("sigmoid", "constant", "none"),
                                   ("relu", "none", "count")], ids="-".join)
def test_every_fused_launch_writes_every_element_of_ragged_shapes_at_every_epilogue(shape, modes):
    activation, bias_mode, row_mode = modes
    kwargs = dict(activation=activation, bias_mode=bias_mode, bias=-1.5, row_mode=row_mode, scale=0.3)
    codes = dict(act=_elementwise_spec.ACTIVATIONS.index(activation), bias=-1.5, scale=0.3,
                 bias_mode=_elementwise_spec.BIAS_MODES.index(bias_mode),
                 row_mode=_elementwise_spec.ROW_MODES.index(row_mode))
    q, k, v = qkv(shape, dtype=torch.float32, device=DEVICE)
    grad = torch.randn(*q.shape[:-1], v.shape[-1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = [t.double().requires_grad_() for t in (q, k, v)]
    for causal in (True, False):
        out = elementwise_attention(*exact, causal=causal, form="materialised", **kwargs)
        want = [out, *torch.autograd.grad(out, exact, grad)]
        got = launched(q, k, v, grad.to(q).to(DEVICE), causal=causal, **codes)
        for what, a, b in zip(("o", "dq", "dk", "dv"), got, want):
            assert_close(a.double().cpu(), b.detach(), f"{causal=} {what}", tolerance="fp32_against_fp64")


BF16_HALF_ULP = 2.0**-8  # bf16 keeps 8 significant bits: rounding moves a value by at most this, relatively
BF16_ULP = 2.0**-7


def bf16(t: torch.Tensor) -> torch.Tensor:
    """``t`` rounded to bf16, held in fp64."""
    return t.to(torch.bfloat16).double()


def fused_rounding_model(q, k, v, grad, *, scale: float):
    """The fused kernel in fp64 with its bf16 casts where the kernel makes them (causal relu, row scale 1/n_i):
    ``p`` before ``p V``, ``dO r`` before both backward products, ``dS`` before ``dK`` and ``dQ``.

    Returns each of ``(out, dq, dk, dv)`` with a bound on how far the kernel may be from it: the bf16 rounding
    of what it stores, one bf16 step of every cast product (the kernel's fp32 sums can land on the other side
    of a rounding boundary), and, for dQ and dK, every score within fp32 noise of 0, where ReLU's mask can flip.
    """
    tq, tk = q.shape[-2], k.shape[-2]
    mask = causal_mask(tq, tk).double()
    r = (1.0 / torch.arange(1, tq + 1, dtype=torch.float32)).double()[:, None]  # 1/n_i, computed in fp32
    s = q @ k.transpose(-2, -1) * scale
    p = bf16(torch.relu(s) * mask)
    do = bf16(grad * r)
    ds = bf16((do @ v.transpose(-2, -1)) * (s > 0) * mask)
    near_zero = (s.abs() <= 1e-5 * (q.abs() @ k.abs().transpose(-2, -1)) * scale) * mask
    flips = (do.abs() @ v.abs().transpose(-2, -1)) * near_zero
    wanted = {"out": (p @ v) * r, "dq": ds @ k * scale, "dk": ds.transpose(-2, -1) @ q * scale,
              "dv": p.transpose(-2, -1) @ do}
    spread = {"out": (p.abs() @ v.abs()) * r, "dq": ds.abs() @ k.abs() * scale,
              "dk": ds.abs().transpose(-2, -1) @ q.abs() * scale, "dv": p.abs().transpose(-2, -1) @ do.abs()}
    spread["dq"] = spread["dq"] + flips @ k.abs() * scale
    spread["dk"] = spread["dk"] + flips.transpose(-2, -1) @ q.abs() * scale
    return {name: (want, BF16_HALF_ULP * want.abs() + BF16_ULP * spread[name] + 1e-30)
            for name, want in wanted.items()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 Triton dots are only right on a GPU")
def test_fused_bf16_on_cuda_is_within_its_rounding_of_the_kernel_in_fp64():
    # Compared with fp32 inputs, bf16 inputs move scores near 0 across ReLU's kink, and each flip changes
    # dQ and dK by a whole term: no fixed tolerance is right. Modelled on the same bf16 inputs, with the
    # kernel's own casts, the kernel must lie within its rounding of the model, element by element.
    tq, d = 512, 64
    q, k, v = (t.bfloat16().cuda().requires_grad_() for t in qkv((2, 3, tq, d), dtype=torch.float32))
    grad = torch.randn(2, 3, tq, d, generator=torch.Generator().manual_seed(1)).bfloat16().cuda()
    scale = d**-0.5
    out = elementwise_attention(q, k, v, causal=True, scale=scale, row_mode="count", form="fused")
    got = dict(zip(("out", "dq", "dk", "dv"), (out, *torch.autograd.grad(out, (q, k, v), grad))))
    model = fused_rounding_model(*(t.detach().double().cpu() for t in (q, k, v, grad)), scale=scale)
    for name, (want, bound) in model.items():
        excess = (got[name].double().cpu() - want).abs() - bound
        assert excess.max() <= 0, f"{name}: {int((excess > 0).sum())} elements past the bound, worst {excess.max()}"


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
    tensors = qkv((2, 3, t, d), dtype=torch.float32, requires_grad=True)
    attend, _ = variant_fns(name, "blockwise")
    materialised, _ = variant_fns(name, "materialised")
    assert largest_saved(materialised(True), tensors) >= 2 * 3 * t * t  # the check can see a T x T matrix
    assert largest_saved(attend(True), tensors) <= 2 * 3 * t * d


def test_auto_materialises_short_sequences_and_goes_blockwise_for_long_ones():
    q = torch.zeros(1, 1, 64, 8)
    assert _elementwise.resolve_form("auto", q, 64) == "materialised"
    long = torch.zeros(1, 1, 2048, 8)
    assert _elementwise.resolve_form("auto", long, 2048) == "blockwise"


def test_the_fused_head_dim_limit_is_the_largest_the_block_tables_cover():
    for dtype, blocks in _elementwise_spec.BLOCKS.items():
        limit = _elementwise_spec.max_head_dim(dtype)
        assert limit >= 16, dtype
        for head_dim in range(1, 2 * limit + 1):
            covered = all((kernel, _elementwise_spec.head_block(head_dim)) in blocks
                          for kernel in _elementwise_spec.KERNELS)
            assert covered == (head_dim <= limit), (dtype, head_dim)
    assert _elementwise_spec.max_head_dim(torch.float64) == 0


def test_the_head_block_rounds_as_triton_does():
    triton = pytest.importorskip("triton")
    for dim in range(1, 300):
        assert _elementwise_spec.next_power_of_2(dim) == triton.next_power_of_2(dim), dim
        assert _elementwise_spec.head_block(dim) == max(16, triton.next_power_of_2(dim)), dim


@pytest.mark.skipif(not _elementwise.fused_available(torch.device("cuda")), reason="needs Triton")
def test_auto_is_fused_on_cuda_exactly_where_the_kernel_has_blocks():
    from experiments.attention import _elementwise_triton as fused

    cuda = torch.device("cuda")
    for dtype in _elementwise_spec.BLOCKS:
        limit = _elementwise_spec.max_head_dim(dtype)
        for head_dim in range(1, 2 * limit + 1):
            form = _elementwise.planned_form("auto", cuda, 64, 64, head_dim, dtype)
            assert form == ("fused" if head_dim <= limit else "materialised"), (dtype, head_dim)
    assert _elementwise.planned_form("auto", cuda, 2048, 2048, 256, torch.bfloat16) == "blockwise"
    q = torch.zeros(1, 1, 8, 96)  # fp32 past its limit: refused before any launch, naming the way out
    with pytest.raises(ValueError, match="head dims up to 64.*blockwise"):
        fused.fused_attention(q, q, q, causal=True, scale=1.0)


def test_bad_forms_and_modes_name_the_choices():
    q, k, v = qkv((2, 3, 8, 4), dtype=torch.float32)
    with pytest.raises(ValueError, match="valid values are"):
        elementwise_attention(q, k, v, causal=True, form="flash")
    with pytest.raises(ValueError, match="valid values are"):
        elementwise_attention(q, k, v, causal=True, activation="gelu")
    with pytest.raises(ConfigError, match="form"):
        attention.make_config("relu", form="flash")
    with pytest.raises(ConfigError, match="block_size"):
        attention.make_config("relu", block_size=0)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_modules_give_the_same_output_in_every_cpu_form(name, poisoned_blocks):
    torch.manual_seed(0)
    x = torch.randn(2, 40, 32)
    outs = {}
    for form in ("materialised", "blockwise"):
        torch.manual_seed(1)
        module = attention.build_module(attention.make_config(name, form=form, block_size=16), d_model=32, num_heads=4)
        outs[form] = module(x)
    assert poisoned_blocks, "the blockwise form ran"
    assert_close(outs["blockwise"], outs["materialised"], name, tolerance="fp32_modules")


@pytest.mark.parametrize("name", LINEAR_FAMILY)
def test_linear_family_chunked_and_recurrent_equal_parallel_in_modules(name):
    # the PyTorch forms; fla's TF32 kernel has its own bound below
    x = torch.randn(2, 45, 32, generator=torch.Generator().manual_seed(0))
    outs = {}
    for form in attention.get(name).forms_on("cpu"):
        torch.manual_seed(1)
        module = attention.build_module(attention.make_config(name, form=form, chunk_size=16), d_model=32,
                                        num_heads=4)
        outs[form] = module(x)
    assert set(outs) == {"parallel", "chunked", "recurrent"}
    for form in ("chunked", "recurrent"):
        assert_close(outs[form], outs["parallel"], f"{name} {form}", tolerance="fp32_modules")


def test_auto_runs_parallel_for_short_sequences_and_chunked_for_long_ones_without_fla():
    cpu = torch.device("cpu")
    assert _linear.planned_form("auto", cpu, 1024, 1024) == "parallel"
    assert _linear.planned_form("auto", cpu, 1025, 1025) == "chunked"
    assert _linear.planned_form("chunked", cpu, 64, 64) == "chunked"
    q, k, v = qkv((1, 2, 40, 8))
    assert torch.equal(linear.attend(q, k, v, causal=True, form="auto"),
                       linear.attend(q, k, v, causal=True, form="parallel"))


@pytest.mark.skipif(DEVICE == "cuda", reason="checks the refusal without CUDA")
def test_fla_chunk_is_refused_without_cuda_naming_the_forms_that_run():
    cpu = torch.device("cpu")
    assert not _linear.fla_available(cpu)
    assert "fla_chunk" not in attention.get("linear").forms_on("cpu")
    q, k, v = qkv((1, 2, 8, 4))
    with pytest.raises(ValueError, match=r"fla_chunk.*valid forms here are \['auto', 'parallel', 'chunked', "):
        linear.attend(q, k, v, causal=True, form="fla_chunk")
    config = attention.make_config("linear", form="fla_chunk")
    with pytest.raises(ConfigError, match="form=fla_chunk needs fla-core and a CUDA device.*use auto, parallel"):
        config.check_run(positions=8, device=cpu, head_dim=4)
    attention.make_config("linear", form="auto").check_run(positions=8, device=cpu, head_dim=4)


@pytest.mark.skipif(DEVICE != "cuda" or not _linear.fla_available(torch.device("cuda")),
                    reason="needs CUDA and fla-core")
def test_auto_is_fla_chunk_on_cuda_and_chunked_is_the_pytorch_blocks():
    cuda = torch.device("cuda")
    assert _linear.planned_form("auto", cuda, 64, 64) == "fla_chunk"
    assert _linear.planned_form("chunked", cuda, 64, 64) == "chunked"
    q, k, v = qkv((1, 2, 40, 8), device="cuda")
    blocks = linear.attend(q, k, v, causal=True, form="chunked", chunk_size=16)
    on_cpu = linear.attend(*(t.cpu() for t in (q, k, v)), causal=True, form="chunked", chunk_size=16)
    assert_close(blocks.cpu(), on_cpu, "chunked on CUDA is the PyTorch blocks, in fp64")


TF32_STEP = 2.0**-11  # TF32 keeps 11 significant bits: rounding an input moves it by at most this, relatively


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fla's kernels need CUDA")
def test_fla_chunked_is_within_tf32_rounding_of_the_exact_sum_on_cuda():
    # fla's chunk kernel multiplies in TF32 (its default), rounding every product's inputs: a fixed fp32
    # tolerance against PyTorch's fp32 products is wrong at one scale or another. Against the exact sum
    # in fp64, each element may be off by a few TF32 steps of the sum of its terms' magnitudes (the inputs
    # of the in-chunk scores, the state and its read are each rounded: four steps, doubled for slack).
    pytest.importorskip("fla.ops.linear_attn")
    gen = torch.Generator().manual_seed(0)
    fq, fk = (torch.rand(2, 3, 256, 64, generator=gen).cuda().requires_grad_() for _ in range(2))
    v = torch.randn(2, 3, 256, 64, generator=gen).cuda().requires_grad_()
    grad = torch.randn(2, 3, 256, 64, generator=gen).double()
    assert _linear.fla_available(fq.device)
    num, den = _linear._fla_chunked(fq, fk, v)
    got = [num, den, *torch.autograd.grad(num, (fq, fk, v), grad.to(num))]
    exact = [t.detach().double().cpu().requires_grad_() for t in (fq, fk, v)]
    scores = _linear.masked_scores(exact[0], exact[1], causal=True)  # (B, H, T, T), phi >= 0
    want = [scores @ exact[2], scores.sum(-1, keepdim=True),
            *torch.autograd.grad(scores @ exact[2], exact, grad, retain_graph=True)]
    magnitude = scores @ exact[2].abs()  # the sum of each element's terms' magnitudes, and of its gradients'
    spread = [magnitude, scores.sum(-1, keepdim=True), *torch.autograd.grad(magnitude, exact[:2], grad.abs()),
              scores.transpose(-2, -1) @ grad.abs()]
    for name, a, b, m in zip(("num", "den", "dq", "dk", "dv"), got, want, spread):
        excess = (a.double().cpu() - b.detach()).abs() - 8 * TF32_STEP * m.detach()
        assert excess.max() <= 1e-6, f"{name}: {int((excess > 1e-6).sum())} elements past the bound"
