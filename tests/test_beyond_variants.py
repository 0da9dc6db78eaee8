"""The normalisations after the seed papers (SSMax, softmax_1, softpick, stick-breaking) against their
formulas written out entry by entry, and the properties each is for."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_close, qkv

from experiments import attention

SHAPE = (2, 3, 7, 4)  # (B, H, T, D)


def logits_of(q, k):
    return (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)


def by_entry(rule, q, k, *, causal=True):
    """``rule(z_row, i, visible_count) -> weights`` applied row by row to the visible keys."""
    z = logits_of(q, k)
    out = torch.zeros_like(z)
    for b in range(z.shape[0]):
        for h in range(z.shape[1]):
            for i in range(z.shape[2]):
                n = i + 1 if causal else z.shape[3]
                out[b, h, i, :n] = rule(z[b, h, i, :n], h, n)
    return out


def test_softmax1_is_softmax_with_an_extra_zero_logit():
    q, k, v = qkv(SHAPE)
    expected = by_entry(lambda z, h, n: z.exp() / (1 + z.exp().sum()), q, k)
    variant = attention.get("softmax1")
    assert_close(variant.weights(q, k, causal=True), expected, "weights")
    assert_close(variant.attend(q, k, v, causal=True), expected @ v, "attend (SDPA with a zero key)")
    assert (expected.sum(-1) < 1).all(), "the zero logit always takes some mass"


def test_softmax1_rows_can_empty_out_where_softmax_cannot():
    q, k = torch.ones(2, 3, 7, 4, dtype=torch.float64), -10 * torch.ones(2, 3, 7, 4, dtype=torch.float64)  # z = -20
    assert attention.get("softmax1").weights(q, k, causal=True).sum(-1).max() < 1e-6
    assert_close(attention.get("softmax").weights(q, k, causal=True).sum(-1), torch.ones(2, 3, 7, dtype=q.dtype))


def test_ssmax_is_n_to_the_s_z_normalised_with_one_s_per_head():
    q, k, v = qkv(SHAPE)
    s = torch.tensor([0.3, 0.43, 1.5], dtype=torch.float64)
    expected = by_entry(lambda z, h, n: n ** (s[h] * z) / (n ** (s[h] * z)).sum(), q, k)
    variant = attention.get("ssmax")
    assert_close(variant.weights(q, k, causal=True, s=s), expected, "weights")
    assert_close(variant.attend(q, k, v, causal=True, s=s), expected @ v, "attend (scaled queries through SDPA)")
    expected_full = by_entry(lambda z, h, n: n ** (0.43 * z) / (n ** (0.43 * z)).sum(), q, k, causal=False)
    assert_close(variant.weights(q, k, causal=False), expected_full, "non-causal: n is every key")


def test_ssmax_learns_s_and_keeps_it_fixed_when_asked():
    x = torch.randn(2, 6, 16)
    learnt = attention.build_module(attention.make_config("ssmax"), d_model=16, num_heads=2)
    learnt(x).square().sum().backward()
    assert learnt.s.grad is not None and learnt.s.grad.abs().sum() > 0
    fixed = attention.build_module(attention.make_config("ssmax", learn_s=False, s_init=0.5), d_model=16, num_heads=2)
    assert "s" not in dict(fixed.named_parameters()) and torch.equal(fixed.s, torch.full((2,), 0.5))


def test_softpick_is_the_rectified_softmax():
    q, k, v = qkv(SHAPE, spread=0.8)
    expected = by_entry(lambda z, h, n: (z.exp() - 1).clamp_min(0) / (z.exp() - 1).abs().sum(), q, k)
    variant = attention.get("softpick")
    for fn in (variant.weights, lambda q, k, **kw: variant.reference(q, k, torch.eye(7, dtype=q.dtype)
                                                                        .expand(2, 3, 7, 7), **kw)):
        got = fn(q, k, causal=True, eps=0.0)
        rows = expected.sum(-1) > 0  # the first query sees one key: 0/0 where its logit is negative
        assert_close(got[rows], expected[rows], "softpick against relu(e^z - 1) / sum |e^z - 1|")
    assert (variant.weights(q, k, causal=True).sum(-1) <= 1 + 1e-12).all()


def test_softpick_gives_null_rows_and_stays_finite_at_large_logits():
    q, k, v = qkv(SHAPE)
    variant = attention.get("softpick")
    negative = variant.weights(q.abs(), -k.abs(), causal=True)  # every logit <= 0
    assert torch.equal(negative, torch.zeros_like(negative)), "a row of non-positive logits is all zero"
    huge = variant.attend(300 * q, k, v, causal=True)  # e^z overflows float64 past z ~ 709
    assert torch.isfinite(huge).all()


def test_stick_breaking_is_the_product_from_the_nearest_key():
    q, k, v = qkv(SHAPE)

    def rule(z, h, n):
        beta = torch.sigmoid(z)
        return torch.stack([beta[j] * torch.prod(1 - beta[j + 1:n]) for j in range(n)])

    expected = by_entry(rule, q, k)
    variant = attention.get("stick_breaking")
    assert_close(variant.weights(q, k, causal=True), expected, "log-space weights")
    assert_close(variant.reference(q, k, v, causal=True), expected @ v, "reference")
    left = by_entry(lambda z, h, n: torch.prod(1 - torch.sigmoid(z)).expand(n), q, k)[..., 0]
    assert_close(expected.sum(-1), 1 - left, "a row sums to 1 minus the stick left")


def test_stick_breaking_favours_the_nearest_of_equal_keys():
    q = torch.ones(1, 1, 6, 4, dtype=torch.float64)
    k = torch.ones(1, 1, 6, 4, dtype=torch.float64)
    row = attention.get("stick_breaking").weights(q, k, causal=True)[0, 0, -1]
    assert (row.diff() > 0).all(), "equal logits: the nearer the key, the larger its share"


@pytest.mark.parametrize("name", ["ssmax", "softmax1", "softpick", "stick_breaking"])
def test_each_new_variant_trains_a_step_and_is_listed(name):
    assert name in attention.names()
    module = attention.build_module(attention.make_config(name), d_model=16, num_heads=2)
    x = torch.randn(2, 9, 16, requires_grad=True)
    module(x).square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
