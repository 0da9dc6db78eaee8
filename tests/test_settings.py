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
    assert 0.0 <= result["probes"]["null_rate_at_init"] <= 1.0


def test_the_null_rate_probe_at_init_sees_causal_relus_zero_rows():
    # a causal ReLU head's first row sees one key: all zero whenever that one score is negative (about half the
    # time), so the largest per-head rate at initialisation is well above 0 for relu and exactly 0 for softmax
    from experiments.train import attention_at_init

    def null_rate(model, test, autocast):
        return attention_at_init(model, test, autocast=autocast)[0]

    test = (torch.randint(128, (64, 32), generator=torch.Generator().manual_seed(1)),)
    assert null_rate(model("relu", length=32), test, autocast=False) > 0.005
    assert null_rate(model("softmax", length=32), test, autocast=False) == 0.0


# --- S6: the memory's concentration, where it is asked and on whole slots ---------------------------------------

def test_the_top_share_counts_the_nearest_whole_number_of_slots():
    from experiments.metrics import top_share

    act = torch.zeros(1, 512)
    act[0, :2] = torch.tensor([3.0, 1.0])  # 0.2% of 512 is 1.02 slots
    act[0, 2:] = 1.0 / 510
    assert float(top_share(act, 0.002, rounding="nearest")) == pytest.approx(3 / 5)  # one slot
    assert float(top_share(act, 0.002)) == pytest.approx(4 / 5)  # rounded up: two slots, 0.39%


def test_the_memorys_top_mass_at_queries_reads_only_the_labelled_positions():
    from experiments.metrics import ffn_top_mass

    task = synthetic.make_config("memorisation", vocab_size=32, num_facts=16, key_tokens=2, seq_len=18,
                                 num_test_examples=8)
    inputs, labels = synthetic.test_set(task)
    torch.manual_seed(0)
    config = ModelConfig(d_model=16, num_heads=2, num_layers=1, mlp_activation="softmax", mlp_ratio=4)
    net = Transformer(config, vocab_size=32, max_len=18)
    asked = labels != synthetic.IGNORE_INDEX
    assert 0 < int(asked.sum()) < asked.numel()
    seen = []
    hook = net.blocks[0].mlp.down.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    at_queries = ffn_top_mass(net, (inputs, labels), at_labels=True)
    hook.remove()
    act = seen[0].abs()
    keep = max(1, round(0.002 * act.shape[-1]))
    expected = (act.topk(keep, dim=-1).values.sum(-1) / act.sum(-1))[asked].mean()
    assert at_queries == pytest.approx(float(expected))
    assert ffn_top_mass(net, (inputs, labels)) != pytest.approx(at_queries)  # every position, rounded up


# --- R5: head diversity on the same rows for every variant ------------------------------------------------------

def test_head_diversity_at_queries_scores_every_asked_row_and_a_switched_off_head_as_absent():
    from experiments.metrics import head_diversity_at

    torch.manual_seed(0)
    w = torch.rand(2, 3, 5, 5)
    every = torch.ones(2, 5, dtype=torch.bool)
    assert head_diversity_at([w], every) == pytest.approx(float(attention_stats.head_diversity(w, causal=False)))
    off = w.clone()
    off[:, 0] = 0  # head 0 switched off everywhere: the divergence of the other two, on the same rows
    assert head_diversity_at([off], every) == pytest.approx(head_diversity_at([w[:, 1:]], every))
    alone = w.clone()
    alone[:, 1:] = 0  # one live head: nothing to diverge from, 0 on every row (not left out)
    assert head_diversity_at([alone], every) == 0.0
    assert head_diversity_at([w], torch.zeros(2, 5, dtype=torch.bool)) is None


# --- R7: unaligned words, and every target word counted -----------------------------------------------------------

def alignment_task(**knobs):
    return synthetic.make_config("alignment", vocab_size=16, source_len=6, reordering="reversal",
                                 num_test_examples=64, **knobs)


def test_particles_are_target_words_with_no_gold_link_before_the_marked_source_words():
    from synthetic import alignment

    task = alignment_task(particle_fraction=0.25, fertility_prob=0.25)
    source, inputs, labels, gold = synthetic.test_set(task)
    _, _, marked = alignment.lexicons(task)
    particle = labels == alignment.PARTICLE
    assert bool(particle.any()) and not bool(gold[particle].any())  # unaligned
    assert int(marked.sum()) == round(0.25 * (16 - 4))
    assert int((source < 4).sum()) == 0  # token 3 is the particle: content starts at 4
    # each particle comes right before the translation of a marked source word, and every such word has one
    after = torch.zeros_like(particle)
    after[:, 1:] = particle[:, :-1]
    aligned_to = gold.float().argmax(-1)
    assert bool(marked[source.gather(1, aligned_to)][after].all())
    assert int(particle.sum()) == int(marked[source].sum())
    assert task.seq_len == 3 * 6 + 1 and inputs.shape[1] == task.seq_len
    assert synthetic.chance(task) == pytest.approx((6 * 1.5 / 13 + 1) / (6 * 1.5 + 1))


def test_without_particles_the_task_and_its_key_are_unchanged():
    task = alignment_task(fertility_prob=0.25)
    assert "particle_fraction" not in synthetic.config_to_dict(task)
    assert alignment_task(particle_fraction=0.0, fertility_prob=0.25) == task
    from experiments.metrics import target_words

    _, _, labels, gold = synthetic.test_set(task)
    assert torch.equal(target_words(labels), gold.any(-1))  # every target word has a link: the same AER rows


def test_the_aer_counts_a_link_from_an_unaligned_word_and_not_a_null_row_there():
    from experiments.metrics import alignment_error

    gold = torch.zeros(1, 3, 2, dtype=torch.bool)
    gold[0, 0, 0] = gold[0, 2, 1] = True  # target word 1 is unaligned
    rows = torch.ones(1, 3, dtype=torch.bool)
    linked = torch.zeros(1, 1, 3, 2)
    linked[0, 0, 0, 0] = linked[0, 0, 2, 1] = 1.0
    null = linked.clone()
    linked[0, 0, 1, 0] = 1.0  # a head that must link every row links the unaligned word somewhere
    assert alignment_error([null], gold, rows)["best_per_layer"] == [0.0]
    assert alignment_error([linked], gold, rows)["best_per_layer"] == [pytest.approx(1 - 4 / 5)]
    assert alignment_error([linked], gold)["best_per_layer"] == [0.0]  # rows with a gold link only: not seen


def test_particle_fraction_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="particle_fraction"):
        alignment_task(particle_fraction=1.5)
    with pytest.raises(ConfigError, match="vocab_size >= 5"):
        synthetic.make_config("alignment", vocab_size=4, source_len=2, particle_fraction=0.5)



def test_possible_links_are_each_particles_link_to_the_word_it_precedes():
    from synthetic import alignment

    task = alignment_task(particle_fraction=0.25, fertility_prob=0.25, possible_links=True)
    batch = synthetic.test_set(task)
    _, _, labels, sure = batch
    possible = alignment.possible_links(task, batch)
    particle = labels == alignment.PARTICLE
    assert torch.equal(possible.any(-1), particle)  # exactly the particles, one link each
    assert bool((possible.sum(-1) <= 1).all()) and not bool((possible & sure).any())
    assert torch.equal(possible[:, :-1][particle[:, :-1]], sure[:, 1:][particle[:, :-1]])  # the next word's
    assert alignment.possible_links(alignment_task(particle_fraction=0.25), batch) is None
    assert "possible_links" not in synthetic.config_to_dict(alignment_task(particle_fraction=0.25))
    with pytest.raises(ConfigError, match="possible_links needs particles"):
        alignment_task(possible_links=True)


def test_a_possible_link_neither_counts_against_a_head_nor_is_required():
    from experiments.metrics import alignment_error

    sure = torch.zeros(1, 3, 2, dtype=torch.bool)
    sure[0, 0, 0] = sure[0, 2, 1] = True  # target word 1 (a particle) has no sure link
    possible = torch.zeros_like(sure)
    possible[0, 1, 1] = True  # it may be linked to the source word of the word it precedes
    rows = torch.ones(1, 3, dtype=torch.bool)
    null = torch.zeros(1, 1, 3, 2)
    null[0, 0, 0, 0] = null[0, 0, 2, 1] = 1.0
    to_head, elsewhere = null.clone(), null.clone()
    to_head[0, 0, 1, 1] = 1.0
    elsewhere[0, 0, 1, 0] = 1.0
    best = {name: alignment_error([w], sure, rows, possible)["best_per_layer"][0]
            for name, w in (("null", null), ("to_head", to_head), ("elsewhere", elsewhere))}
    assert best["null"] == 0.0 and best["to_head"] == pytest.approx(1 - (2 + 3) / (3 + 2))  # = 0
    assert best["elsewhere"] == pytest.approx(1 - (2 + 2) / (3 + 2))  # a false link still costs
    assert alignment_error([to_head], sure, rows)["best_per_layer"][0] == pytest.approx(1 - 4 / 5)  # sure only

# --- the probes as CSV columns -------------------------------------------------------------------------------

def test_probe_columns_take_the_largest_layer_and_ignore_what_is_not_numbers():
    from experiments.sweep import analysis_columns, probe_columns

    result = {"probes": {"output_ratio_at_init": [0.5, 12.0], "grad_norm_max": 3.0, "null_rate_at_init": 0.02},
              "curve": [{"output_ratio": [1.0, 2.0]}, {"output_ratio": [4.0, 0.1]}]}
    assert probe_columns(result) == {"probe.output_ratio_at_init.max": 12.0, "probe.output_ratio.final.max": 4.0,
                                     "probe.grad_norm_max": 3.0, "probe.null_rate_at_init": 0.02}
    planted = {"probes": {"output_ratio_at_init": ["x"], "grad_norm_max": "big"}, "curve": "not a list"}
    assert probe_columns(planted) == {} and probe_columns({}) == {}
    final = {"aer": {"best_per_layer": [0.4, 0.3], "null_rate": {"unaligned": [[0.1, 0.9]], "aligned": [[0.0, 0.2]]}}}
    columns = analysis_columns(final)
    assert columns["aer"] == 0.3
    assert (columns["cross_null.unaligned.max"], columns["cross_null.aligned.at_that_head"]) == (0.9, 0.2)


def test_the_aer_reports_null_rows_at_unaligned_and_aligned_words():
    from experiments.metrics import alignment_error

    gold = torch.zeros(1, 3, 2, dtype=torch.bool)
    gold[0, 0, 0] = gold[0, 2, 1] = True  # word 1 unaligned
    weights = torch.zeros(1, 2, 3, 2)
    weights[0, :, 0, 0] = weights[0, :, 2, 1] = 1.0
    weights[0, 1, 1, 0] = 1.0  # head 1 links the unaligned word; head 0 switches off there
    null = alignment_error([weights], gold, torch.ones(1, 3, dtype=torch.bool))["null_rate"]
    assert null == {"unaligned": [[1.0, 0.0]], "aligned": [[0.0, 0.0]]}
    assert "null_rate" not in alignment_error([weights], gold)  # rows with a gold link only: none unaligned


def test_a_start_vector_is_a_first_key_every_query_sees_and_gets_no_label():
    net = model("softmax", length=12, d_model=16, bos=True, token_mixing="shift")
    (idx,) = tokens(12, batch=4)
    logits = net(idx)
    assert logits.shape == (4, 12, 128)  # one prediction per token, none for the start
    maps, causal = net.attention_maps((idx, idx))
    assert causal and all(m.shape == (4, 2, 12, 13) for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(4, 2, 12))
    assert bool((maps[0][..., 0] > 0).all())  # every query sees the start
    assert bool((maps[0].triu(2) == 0).all())  # token i sees the start and tokens 0..i, nothing after
    share = attention_stats.first_mass(maps[0], causal=True)
    torch.testing.assert_close(share, maps[0][..., 0].double().mean(dim=(0, 2)))  # the sink statistic reads the start
    logits.sum().backward()
    assert net.start.weight.grad.abs().sum() > 0  # learnt
    assert "bos" not in ModelConfig().to_dict() and ModelConfig(bos=True).to_dict()["bos"] is True


def test_a_run_with_a_start_vector_trains_and_records_its_statistics():
    task = synthetic.make_config("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2, num_test_examples=16)
    config = ModelConfig(d_model=16, num_heads=2, bos=True, attention=attention.make_config("softmax1"))
    result = train(task, config, TrainConfig(steps=4, batch_size=8, warmup_steps=1, eval_every=2, device="cpu",
                                             target_accuracy=0.0), progress=False)
    assert result["status"] == "finished" and 0.0 <= result["final"]["test_accuracy"] <= 1.0
    per_layer = result["final"]["attention_stats"]["first_mass"]["per_layer"]
    assert len(per_layer) == config.num_layers and all(0.0 < max(layer) <= 1.0 for layer in per_layer)


def test_a_start_vector_on_a_seq2seq_task_is_refused_before_training():
    from experiments.runs import RunConfig, check_compatible

    config = RunConfig(task=alignment_task(), model=ModelConfig(d_model=16, num_heads=2, bos=True),
                       train=TrainConfig(steps=2, warmup_steps=1, device="cpu"))
    with pytest.raises(ConfigError, match="model.bos adds a start vector to a decoder-only model"):
        check_compatible(config)
