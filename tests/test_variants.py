"""What makes each variant itself: the formula of its paper, written out here."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from helpers import assert_close

from experiments import attention, attention_stats
from experiments.attention import inline, linear, reluformer, sigmoid
from experiments.model import ModelConfig, Transformer


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rela_g_module_is_the_papers_formula():
    """out = W_o(g * z / sqrt(mean(z^2) + eps) * sigmoid(w * z)), z = concat_h relu(Q K^T / sqrt d) V."""
    torch.manual_seed(0)
    mod = attention.build_module(attention.make_config("rela_g"), d_model=8, num_heads=2).double()
    x = randn(2, 5, 8)
    q = (x @ mod.q_proj.weight.T).view(2, 5, 2, 4).transpose(1, 2)
    k, v = (x @ mod.kv_proj.weight.T).split(8, dim=-1)
    k, v = k.view(2, 5, 2, 4).transpose(1, 2), v.view(2, 5, 2, 4).transpose(1, 2)
    scores = (q / math.sqrt(4)) @ k.transpose(-2, -1) * torch.ones(5, 5).tril().double()
    z = (torch.relu(scores) @ v).transpose(1, 2).reshape(2, 5, 8)
    g, w = mod.norm.gain, mod.norm.gate
    expected = (g * z / torch.sqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6) * torch.sigmoid(w * z)) @ mod.out_proj.weight.T
    assert_close(mod(x), expected, "ReLA-g")
    assert torch.equal(g, torch.ones(8, dtype=torch.float64))


def test_sigmoid_bias_is_minus_log_visible_keys():
    q, k = randn(1, 1, 6, 4), randn(1, 1, 6, 4, seed=1)
    scores = q @ k.transpose(-2, -1) / 2
    n = torch.arange(1, 7, dtype=torch.float64).unsqueeze(1)
    expected = torch.sigmoid(scores - n.log()).tril()
    assert_close(sigmoid.weights(q, k, causal=True), expected, "sigmoid -log n")
    zero = torch.zeros(1, 1, 50, 4, dtype=torch.float64)
    assert sigmoid.weights(zero, zero, causal=False, bias=0.0).sum(-1).mean().item() == 25.0  # n/2


def test_relu_len_and_reluformer_scaling():
    q, k = randn(1, 2, 7, 4), randn(1, 2, 7, 4, seed=1)
    plain = torch.relu(q @ k.transpose(-2, -1) / 2).tril()
    n = torch.arange(1, 8, dtype=torch.float64).unsqueeze(1)
    assert_close(attention.get("relu_len").weights(q, k, causal=True), plain / n, "relu / n")
    gamma = torch.tensor([1.0, 2.0], dtype=torch.float64)
    expected = plain / (gamma.view(2, 1, 1) * torch.sqrt(n / 2))
    assert_close(reluformer.weights(q, k, causal=True, gamma=gamma), expected, "relu / (gamma sqrt(n/2))")


def test_reluformer_regularisers_on_a_worked_row():
    row = torch.tensor([[[[0.5, 0.5, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]], dtype=torch.float64)
    losses = reluformer.regularisers(row, causal=False, entropy_margin=0.1)
    # rows with mass: sums 1 and 2 -> |log| 0 and log 2; entropies log 2 and 0, margin 0.1 log 4
    assert_close(losses["norm"], torch.tensor(math.log(2) / 2, dtype=torch.float64), "norm loss")
    assert_close(losses["entropy"], torch.tensor((math.log(2) - 0.1 * math.log(4)) / 2, dtype=torch.float64), "entropy")


def test_auxiliary_losses_reach_the_training_objective():
    config = ModelConfig(d_model=16, num_heads=2,
                         attention=attention.make_config("reluformer", norm_loss_weight=1.0, entropy_loss_weight=1.0))
    model = Transformer(config, vocab_size=16, max_len=8)
    model(torch.randint(16, (2, 8)))
    aux = model.aux_losses()
    assert set(aux) == {"reluformer_norm", "reluformer_entropy"} and aux["reluformer_norm"] > 0
    assert model.aux_losses() == {}, "read once per forward"
    plain = Transformer(ModelConfig(d_model=16, num_heads=2, attention=attention.make_config("reluformer")),
                        vocab_size=16, max_len=8)
    plain(torch.randint(16, (2, 8)))
    assert plain.aux_losses() == {}


def test_inline_is_injective_where_normalised_relu_linear_is_not():
    """H1: relu is positively homogeneous, so q and 2q get the same normalised weights; InLine's differ."""
    q, k = randn(1, 1, 5, 4), randn(1, 1, 5, 4, seed=1)
    relu_linear = linear.weights(q, k, causal=False, feature_map="relu", eps=0.0)
    assert_close(linear.weights(2 * q, k, causal=False, feature_map="relu", eps=0.0), relu_linear, "linear")
    centred = inline.weights(q, k, causal=False)
    assert not torch.allclose(inline.weights(2 * q, k, causal=False), centred)
    assert_close(centred.sum(-1), torch.ones(1, 1, 5, dtype=torch.float64), "rows sum to 1")


def test_softmax_ln_normalises_the_heads():
    torch.manual_seed(0)
    mod = attention.build_module(attention.make_config("softmax_ln"), d_model=8, num_heads=2)
    z = torch.randn(2, 3, 8) * 7 + 3
    normed = mod.post(z)
    assert_close(normed, F.layer_norm(z, (8,)), "LN at init is the plain LayerNorm")


def test_sparse_rows_sum_to_one_and_have_exact_zeros():
    q, k = 3 * randn(1, 2, 12, 4), randn(1, 2, 12, 4, seed=1)
    for name in ("sparsemax", "entmax15"):
        w = attention.get(name).weights(q, k, causal=True)
        assert_close(w.sum(-1), torch.ones(1, 2, 12, dtype=torch.float64), f"{name} rows")
        assert (w[..., 4:, :] == 0).any(), f"{name} has no exact zeros"
        assert attention_stats.null_rate(w, causal=True).eq(0).all()
    assert_close(attention.get("sparsemax").weights(q, k, causal=False, scale=1e-6).sum(-1),
                 torch.ones(1, 2, 12, dtype=torch.float64), "flat scores")


# --- attention statistics ------------------------------------------------------------------------

def test_statistics_on_a_hand_made_matrix():
    w = torch.tensor([[[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]],
                       [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]]], dtype=torch.float64)  # (1, 2, 3, 3)
    # head 0: visible pairs 6, zeros among them: (1,0),(1,1),(2,2) -> 3/6; null rows 1/3
    assert attention_stats.sparsity_rate(w, causal=True).tolist() == [0.5, 0.0]
    assert_close(attention_stats.null_rate(w, causal=True), torch.tensor([1 / 3, 0.0], dtype=torch.float64), "null")
    assert_close(attention_stats.row_entropy(w, causal=True),
                 torch.tensor([math.log(2) / 2, (math.log(2) + _entropy([0.2, 0.3, 0.5])) / 3], dtype=torch.float64),
                 "entropy")
    # diversity: only queries 0 and 2 have mass in both heads; query 0 identical -> 0
    mixture = [0.35, 0.4, 0.25]
    js_q2 = _entropy(mixture) - (math.log(2) + _entropy([0.2, 0.3, 0.5])) / 2
    assert_close(attention_stats.head_diversity(w, causal=True), torch.tensor([js_q2 / 2], dtype=torch.float64), "JS")
    # top 34% of a row's visible entries, at least one: rows see 1, 2, 3 keys -> keep 1, 1, 2 entries;
    # head 0: 1, (dead row left out), 1; head 1: 1, 0.5, 0.8
    assert_close(attention_stats.top_mass(w, causal=True, fraction=0.34),
                 torch.tensor([1.0, 2.3 / 3], dtype=torch.float64), "top mass")


def _entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_relu_sparsity_is_about_half_at_initialisation():
    """R1's baseline: symmetric random scores make half of the visible ReLU weights zero."""
    q, k = randn(4, 2, 64, 16), randn(4, 2, 64, 16, seed=1)
    rate = attention_stats.sparsity_rate(attention.get("relu").weights(q, k, causal=False), causal=False)
    assert torch.all((rate - 0.5).abs() < 0.02), rate


def test_summarise_covers_every_layer_and_statistic():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(d_model=16, num_heads=2, attention=attention.make_config("rela_g")),
                        vocab_size=16, max_len=10)
    summary = attention_stats.summarise(model.attention_maps((torch.randint(16, (3, 10)),))[0])
    assert len(summary) == 2 and set(summary[0]) == set(attention_stats.STATISTICS)
    assert len(summary[0]["sparsity"]) == 2
