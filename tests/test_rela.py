"""ReLA specifics: unnormalised ReLU weights, null rows, gated RMSNorm."""

from __future__ import annotations

import math

import torch
from helpers import assert_close

from experiments import attention
from experiments.attention import rela


def test_weights_are_relu_of_scaled_scores_with_masked_entries_zero():
    q, k = torch.randn(1, 1, 6, 4, dtype=torch.float64), torch.randn(1, 1, 6, 4, dtype=torch.float64)
    expected = torch.relu(q @ k.transpose(-2, -1) / math.sqrt(4)).tril()
    assert_close(rela.weights(q, k, causal=True), expected, "relu weights")


def test_a_query_can_attend_to_nothing():
    """A query opposite to every key gets an all-zero row: the head switches off (R6)."""
    k = torch.ones(1, 1, 5, 3)
    q = -torch.ones(1, 1, 5, 3)
    v = torch.randn(1, 1, 5, 3)
    assert torch.all(rela.weights(q, k, causal=True) == 0)
    assert torch.all(rela.attend(q, k, v, causal=True) == 0)


def test_gated_rmsnorm_formula_and_gate_near_half_at_init():
    torch.manual_seed(0)
    norm = rela.GatedRMSNorm(64, gate=True, gain_init="ones", eps=1e-6)
    z = torch.randn(3, 5, 64)
    rms = z.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    expected = norm.gain * z / rms * torch.sigmoid(norm.gate * z)
    assert_close(norm(z), expected, "gated rmsnorm")
    gate = torch.sigmoid(norm.gate * z)
    assert abs(gate.mean().item() - 0.5) < 0.05
    bound = math.sqrt(3 / 64)
    assert norm.gate.abs().max() <= bound


def test_rela_i_has_no_gate_and_uniform_gain():
    module = attention.build_module(attention.make_config("rela_i"), d_model=48, num_heads=4)
    assert module.norm.gate is None
    assert module.norm.gain.abs().max() <= math.sqrt(3 / 48)
    assert module.norm.gain.std() > 0
