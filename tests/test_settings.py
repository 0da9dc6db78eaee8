"""The paper settings as knobs (norm placement, initialisation, positions, schedule) and the mechanism probes
every result records (attention output over residual, gradient norm, row mass)."""

from __future__ import annotations

import math

import pytest
import torch

import synthetic
from experiments import attention, attention_stats
from experiments.config import ConfigError
from experiments.model import Block, ModelConfig, Sinusoidal, Transformer
from experiments.train import TrainConfig, gradient_norm, lr_factor, train

AUTHORS = dict(norm_placement="post", init="unit_scaling", positions="sinusoidal")  # the ReLA authors' setting


def model(name: str = "relu", *, length: int = 64, d_model: int = 64, seed: int = 0, **settings) -> Transformer:
    torch.manual_seed(seed)
    config = ModelConfig(d_model=d_model, num_heads=2, attention=attention.make_config(name), **settings)
    return Transformer(config, vocab_size=128, max_len=length)


def tokens(length: int, batch: int = 16) -> tuple[torch.Tensor]:
    return (torch.randint(128, (batch, length), generator=torch.Generator().manual_seed(1)),)


def test_a_post_norm_block_normalises_after_each_residual_sum():
    config = ModelConfig(d_model=32, num_heads=2, norm_placement="post")
    torch.manual_seed(0)
    block = Block(config)
    x = torch.randn(3, 10, 32)
    h = block.attn_norm(x + block.attn(x, causal=True))
    torch.testing.assert_close(block(x), block.mlp_norm(h + block.mlp(h)))
    pre = Block(ModelConfig(d_model=32, num_heads=2))
    pre.load_state_dict(block.state_dict())
    h = x + pre.attn(pre.attn_norm(x), causal=True)
    torch.testing.assert_close(pre(x), h + pre.mlp(pre.mlp_norm(h)))
    assert isinstance(model(norm_placement="post").final_norm, torch.nn.Identity)


def test_unit_scaling_draws_glorot_uniform_matrices_and_unit_variance_embeddings():
    m = model("softmax", d_model=256, **AUTHORS)
    weight = m.blocks[0].mlp.up.weight  # (1024, 256)
    bound = math.sqrt(6 / sum(weight.shape))
    assert weight.abs().max() <= bound and weight.var().item() == pytest.approx(bound**2 / 3, rel=0.05)
    assert m.tokens.weight.std().item() == pytest.approx(256**-0.5, rel=0.05)
    embedded = m.embed(tokens(8)[0]) - m.positions(torch.arange(8))  # looked up, times sqrt(d)
    assert embedded.std().item() == pytest.approx(1.0, rel=0.1)
    gpt2 = model("softmax", d_model=256)
    assert gpt2.tokens.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_sinusoidal_positions_follow_the_formula_at_any_length():
    table = Sinusoidal(6)(torch.arange(3))
    t, w = torch.arange(3.0)[:, None], 10000.0 ** (-torch.arange(3.0) / 3)
    torch.testing.assert_close(table, torch.cat([(t * w).sin(), (t * w).cos()], dim=-1))
    m = model("softmax", length=16, positions="sinusoidal")
    assert m(tokens(40, batch=2)[0]).shape == (2, 40, 128)  # past the training length: no table to run out of


def test_noam_warms_up_linearly_then_falls_as_the_inverse_square_root():
    config = TrainConfig(steps=1000, warmup_steps=100, schedule="noam")
    assert lr_factor(49, config) == pytest.approx(0.5) and lr_factor(99, config) == 1.0
    assert lr_factor(399, config) == pytest.approx(0.5) and lr_factor(899, config) == pytest.approx(1 / 3)
    assert lr_factor(399, TrainConfig(steps=1000, warmup_steps=100)) != pytest.approx(0.5)  # cosine differs
    with pytest.raises(ConfigError, match="valid choices|noam"):
        TrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match="post"):
        ModelConfig(norm_placement="sandwich")


def test_the_output_probe_sees_what_each_setting_does_to_unnormalised_relu():
    # GPT-2 init, pre-norm: plain ReLU attention adds about 5% of the stream; in the authors' setting its
    # output grows with the number of keys (variance n sigma^2 / 2) past the stream itself, while ReLA's
    # RMSNorm holds it at the stream's scale whatever the length
    ours = model("relu").output_ratios(tokens(64))
    assert max(ours) < 0.2
    short, long = (model("relu", length=n, **AUTHORS).output_ratios(tokens(n))[0] for n in (32, 256))
    assert long > 1.0 and long > 1.5 * short
    rela = [model("rela_g", length=n, **AUTHORS).output_ratios(tokens(n))[0] for n in (32, 256)]
    assert all(0.2 < r < 2.0 for r in rela) and rela[1] < 1.5 * rela[0]


def test_the_gradient_norm_is_the_same_with_and_without_clipping():
    m = model("softmax")
    m(tokens(16)[0]).square().mean().backward()
    unclipped = gradient_norm(m, 0.0)
    grads = [p.grad.clone() for p in m.parameters()]
    clipped = gradient_norm(m, 1e-3)  # returns the norm before it scales the gradient
    torch.testing.assert_close(unclipped, clipped)
    assert not all(torch.equal(g, p.grad) for g, p in zip(grads, m.parameters()))  # it did clip


def test_row_mass_is_each_rows_total_weight():
    weights = torch.tensor([[[[0.5, 0.0], [2.0, 1.0]]]])  # (1, 1, 2, 2): rows sum to 0.5 and 3
    assert attention_stats.row_mass(weights, causal=True).tolist() == [1.75]
    softmax = torch.randn(2, 3, 5, 5).softmax(dim=-1)
    torch.testing.assert_close(attention_stats.row_mass(softmax, causal=False), torch.ones(3, dtype=torch.double))


def test_every_result_records_its_probes_at_init_and_at_each_evaluation(tmp_path):
    task = synthetic.make_config("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2, num_test_examples=16)
    config = ModelConfig(d_model=16, num_heads=2, attention=attention.make_config("relu"), **AUTHORS)
    steps = TrainConfig(steps=6, batch_size=8, warmup_steps=1, eval_every=3, device="cpu", grad_clip=0.0,
                        schedule="noam", target_accuracy=0.0)
    result = train(task, config, steps, progress=False)
    assert len(result["probes"]["output_ratio_at_init"]) == config.num_layers
    assert [len(p["output_ratio"]) for p in result["curve"]] == [config.num_layers] * 2
    assert all(p["grad_norm_max"] > 0 for p in result["curve"])
    assert result["probes"]["grad_norm_max"] == max(p["grad_norm_max"] for p in result["curve"])
    assert "row_mass" in result["final"]["attention_stats"]
    # a run resumed from its checkpoint records the same probes and curve as one that was not interrupted
    checkpoint = tmp_path / "run.pt"
    train(task, config, TrainConfig(**{**steps.__dict__, "steps": 3}), progress=False, checkpoint=checkpoint)
    resumed = train(task, config, steps, progress=False, checkpoint=checkpoint)
    assert resumed["probes"] == result["probes"] and resumed["curve"] == result["curve"]
