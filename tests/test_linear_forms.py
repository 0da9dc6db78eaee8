"""Linear attention: the O(1)-state recurrent form computes the parallel form."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from experiments import attention
from experiments.attention import linear


@pytest.mark.parametrize("shape", [(2, 2, 16, 8), (1, 1, 33, 5)], ids=["B2-H2-T16-D8", "B1-H1-T33-D5"])
def test_recurrent_equals_parallel_outputs_and_gradients(shape):
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(3))
    parallel = linear.attend(q, k, v, causal=True, form="parallel")
    recurrent = linear.attend(q, k, v, causal=True, form="recurrent")
    assert_close(recurrent, parallel, "output")
    upstream = torch.randn(shape, generator=generator, dtype=torch.float64)
    for label, g_rec, g_par in zip("qkv", torch.autograd.grad(recurrent, (q, k, v), upstream),
                                   torch.autograd.grad(parallel, (q, k, v), upstream)):
        assert_close(g_rec, g_par, f"d{label}")


def test_state_is_constant_size_and_accumulates_keys():
    q, k, v = (torch.randn(2, 3, 10, 4, dtype=torch.float64) for _ in range(3))
    state = linear.init_state(q, v)
    for t in range(10):
        _, state = linear.recurrent_step(state, q[:, :, t], k[:, :, t], v[:, :, t])
        assert state[0].shape == (2, 3, 4, 4) and state[1].shape == (2, 3, 4)
    phi_k = torch.nn.functional.elu(k) + 1
    assert_close(state[1], phi_k.sum(dim=2), "normaliser z = sum phi(k)")
    assert_close(state[0], phi_k.transpose(-2, -1) @ v, "memory S = sum phi(k) v^T")


def test_module_forms_agree():
    torch.manual_seed(0)
    par = attention.build_module(attention.make_config("linear", form="parallel"), d_model=16, num_heads=2)
    rec = attention.build_module(attention.make_config("linear", form="recurrent"), d_model=16, num_heads=2)
    rec.load_state_dict(par.state_dict())
    x = torch.randn(2, 9, 16)
    assert_close(rec(x), par(x), "module output")


def test_recurrent_form_refuses_non_causal_attention():
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match="causal"):
        linear.attend(q, q, q, causal=False, form="recurrent")


def test_weights_rows_sum_to_one():
    q, k = torch.randn(1, 2, 8, 4, dtype=torch.float64), torch.randn(1, 2, 8, 4, dtype=torch.float64)
    rows = linear.weights(q, k, causal=True, eps=0.0).sum(-1)
    assert_close(rows, torch.ones_like(rows), "row sums")
