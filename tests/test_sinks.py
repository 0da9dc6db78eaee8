"""The attention-sink probe: its statistics on maps whose answer is known, its columns, and a trained run."""

from __future__ import annotations

import math

import pytest
import torch

import synthetic
from experiments import attention, metrics
from experiments.model import ModelConfig
from experiments.sweep import sink_columns
from experiments.train import TrainConfig, train


def maps_with_known_answers():
    """One example of 4 tokens, 3 heads: head 0 puts every row on the first token, head 1 spreads each row
    evenly, head 2 gives row 1 nothing and row 3 all to key 2 (an unnormalised head). Row 2 is the active one."""
    weights = torch.zeros(1, 3, 4, 4)
    weights[0, 0, :, 0] = 1.0
    for t in range(4):
        weights[0, 1, t, :t + 1] = 1.0 / (t + 1)
    weights[0, 2, 0, 0], weights[0, 2, 2, 1], weights[0, 2, 3, 2] = 1.0, 2.0, 3.0
    active = torch.tensor([[False, False, True, False]])
    norms = torch.tensor([[[1.0, 2.0, 2.0, 2.0], [4.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]]])  # (B, H, T)
    return weights, norms, active


def test_sink_statistics_on_maps_with_known_answers():
    weights, norms, active = maps_with_known_answers()
    found = metrics.sink_statistics([weights], [norms], active)
    layer = found["per_layer"][0]
    # dormant rows: 1 and 3 (row 0 sees one key, row 2 is active)
    assert layer["first_weight_dormant"] == pytest.approx([1.0, (1 / 2 + 1 / 4) / 2, 0.0])
    assert found["uniform"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert layer["first_weight_active"] == pytest.approx([1.0, 1 / 3, 0.0])
    assert layer["row_mass_dormant"] == pytest.approx([1.0, 1.0, 1.5])  # row 1 empty, row 3 holds 3
    assert layer["null_dormant"] == pytest.approx([0.0, 0.0, 0.5])
    assert layer["first_share_dormant"] == pytest.approx([1.0, 0.375, 0.0])  # the empty row counts 0
    assert layer["value_norm_ratio"] == pytest.approx([0.5, 2.0, 1.0])


def test_sink_columns_read_the_most_sink_like_head():
    weights, norms, active = maps_with_known_answers()
    sink = metrics.sink_statistics([weights[:, 1:], weights[:, :1]], [norms[:, 1:], norms[:, :1]], active)
    columns = sink_columns(sink)
    assert columns["sink.first_weight_dormant"] == pytest.approx(1.0)  # layer 1's one head
    assert columns["sink.value_norm_ratio"] == pytest.approx(0.5)  # the same head's, not the largest
    assert columns["sink.first_weight_dormant.mean"] == pytest.approx((1.0 + 0.375 + 0.0) / 3)
    assert columns["sink.uniform"] == pytest.approx(0.375)


@pytest.mark.parametrize("planted", [None, {}, {"per_layer": "x"}, {"per_layer": [{"first_weight_dormant": [1]}]},
                                     {"per_layer": [], "uniform": 0.1}])
def test_sink_columns_of_a_result_of_another_shape_are_left_out(planted):
    assert sink_columns(planted) == {}


def test_a_task_without_active_rows_records_no_sink_probe():
    config = synthetic.make_config("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2, num_test_examples=8)
    assert synthetic.active_rows(config, synthetic.test_set(config)) is None


def test_a_short_bigram_backcopy_run_records_the_probe_per_layer_and_head():
    task = synthetic.make_config("bigram_backcopy", seq_len=32, num_test_examples=16)
    model = ModelConfig(d_model=16, num_heads=2, num_layers=2, attention=attention.make_config("softmax"))
    result = train(task, model, TrainConfig(steps=3, batch_size=4, warmup_steps=1, eval_every=3, device="cpu",
                                            target_accuracy=0.0), progress=False)
    sink = result["final"]["sink"]
    assert len(sink["per_layer"]) == 2
    assert all(len(layer[name]) == 2 for layer in sink["per_layer"] for name in metrics.SINK_STATISTICS)
    assert all(math.isfinite(v) for layer in sink["per_layer"] for values in layer.values() for v in values)
    assert all(m == pytest.approx(1.0) for layer in sink["per_layer"] for m in layer["row_mass_dormant"])  # softmax
    assert 0 < sink["uniform"] < 1


def test_the_sink_cards_read_the_one_layer_runs_they_judge():
    from paper_figs import settings
    from paper_figs.claims import Evidence

    def row(name, layers, decay):
        return {"model.attention.name": name, "model.num_layers": str(layers), "model.d_model": "64",
                "model.num_heads": "1", "task.name": "bigram_backcopy", "task.vocab_size": "64", "task.seq_len": "128",
                "task.num_triggers": "3", "train.weight_decay": decay, "train.steps": "600", "train.batch_size": "64",
                "train.seed": "0"}

    rows = [row("softmax", 1, "0.0001"), row("relu", 1, "0.0001"), row("softmax", 2, "0.1"), row("softpick", 1, "0.1")]
    evidence = Evidence(sweeps={"sinks": rows})
    table = {factor: (ours, why) for factor, _, ours, why in settings.CARDS["B5"].table(evidence)}
    assert table["weight decay"] == ("0.0001", "")  # the authors' 1e-4: no reason needed
    assert table["depth and width"][0] == "1 layer, d=64, 1 head" and table["depth and width"][1]
    assert table["task"][0] == "bigram_backcopy: V=64, length 128, k=3 triggers"
    b3 = {factor: ours for factor, _, ours, _ in settings.CARDS["B3"].table(evidence)}
    assert b3["weight decay"] == "0.1, 0.0001"  # softpick's run at another decay shows on the card that reads it
