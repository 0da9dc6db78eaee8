"""Model, training loop, divergence handling and the learning check."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

import synthetic
from experiments import attention
from experiments.config import ConfigError
from experiments.model import ModelConfig, Transformer
from experiments.metrics import per_example
from experiments.train import TrainConfig, lr_factor, train

TINY_TASK = synthetic.make_config("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2, num_test_examples=32)
TINY_MODEL = ModelConfig(d_model=16, num_heads=2)
TINY_TRAIN = TrainConfig(steps=8, batch_size=8, warmup_steps=2, eval_every=4)


@pytest.mark.parametrize("name", attention.names())
def test_model_is_causal_for_every_variant(name):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(d_model=16, num_heads=2, attention=attention.make_config(name)),
                        vocab_size=16, max_len=12)
    idx = torch.randint(16, (2, 12))
    before = model(idx)
    idx[:, 6] = (idx[:, 6] + 1) % 16
    after = model(idx)
    assert torch.allclose(before[:, :6], after[:, :6], atol=0, rtol=0)
    assert not torch.allclose(before[:, 6:], after[:, 6:])
    assert [w.shape for w in model.attention_maps((idx,))[0]] == [(2, 2, 12, 12)] * 2


def test_model_config_validation_and_round_trip():
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        ModelConfig(d_model=10, num_heads=3)
    config = ModelConfig(d_model=32, num_heads=4, attention=attention.make_config("linear", form="recurrent"))
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown key"):
        ModelConfig.from_dict({"width": 3})


def test_mlp_switch_changes_the_parameter_count():
    with_mlp = Transformer(ModelConfig(d_model=16, num_heads=2), vocab_size=16, max_len=8).num_parameters()
    without = Transformer(ModelConfig(d_model=16, num_heads=2, mlp=False), vocab_size=16, max_len=8).num_parameters()
    assert with_mlp - without == 2 * (16 * 64 + 64 + 64 * 16 + 16 + 2 * 16)  # two blocks: up, down, LayerNorm


def test_learning_rate_schedule():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1, lr=1.0)
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(9, config) == pytest.approx(1.0)
    assert lr_factor(10, config) == pytest.approx(1.0)
    assert lr_factor(55, config) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(100, config) == pytest.approx(0.1)


def test_accuracy_counts_only_labelled_positions():
    logits = torch.zeros(1, 4, 5)
    logits[0, :, 2] = 1.0  # predicts token 2 everywhere
    labels = torch.tensor([[-100, 2, -100, 3]])
    correct, counted = per_example(logits, labels)
    assert (correct.tolist(), counted.tolist()) == ([1], [2])


def test_same_seed_same_run_other_seed_other_run():
    first = train(TINY_TASK, TINY_MODEL, TINY_TRAIN, progress=False)
    second = train(TINY_TASK, TINY_MODEL, TINY_TRAIN, progress=False)
    other = train(TINY_TASK, TINY_MODEL, TrainConfig(**{**TINY_TRAIN.__dict__, "seed": 1}), progress=False)
    assert first["curve"] == second["curve"]
    assert first["curve"] != other["curve"]
    assert [p["step"] for p in first["curve"]] == [4, 8]


def test_non_finite_loss_is_a_diverged_result_at_its_step(monkeypatch):
    """Logits turn to NaN from the 6th forward pass: the run reports step 6, it does not crash."""
    calls = {"n": 0}
    forward = Transformer.forward

    def poisoned(self, idx):
        out = forward(self, idx)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 6:
                out = out * float("nan")
        return out

    monkeypatch.setattr(Transformer, "forward", poisoned)
    result = train(TINY_TASK, TINY_MODEL, TINY_TRAIN, progress=False)
    assert result["status"] == "diverged"
    assert result["diverged_at_step"] == 6
    assert [p["step"] for p in result["curve"]] == [4]  # the evaluation before it is kept


def test_early_stop_at_target():
    config = TrainConfig(steps=8, batch_size=8, warmup_steps=2, eval_every=4, target_accuracy=0.0001)
    result = train(TINY_TASK, TINY_MODEL, config, progress=False)
    # a random model answers some of 64 queries right, so the target is met at the first evaluation
    assert result["status"] == "reached_target" and result["steps_run"] == 4


def test_small_softmax_model_learns_small_mqar():
    """2 layers, width 64, 4 heads; 4 pairs in 32 tokens. Seeds 0-2 reach 0.99 by step 500-700 here."""
    task = synthetic.make_config("mqar", vocab_size=32, seq_len=32, num_kv_pairs=4, filler="blank",
                                 num_test_examples=500)
    model = ModelConfig(d_model=64, num_heads=4, attention=attention.make_config("softmax"))
    config = TrainConfig(steps=1200, batch_size=64, lr=1e-3, warmup_steps=100, eval_every=100,
                         target_accuracy=0.99, seed=0)
    result = train(task, model, config, progress=False)
    assert result["status"] == "reached_target", result["curve"]
    assert result["final"]["test_accuracy"] >= 0.99


def test_decode_state_bytes_from_the_real_caches():
    from experiments import metrics

    torch.manual_seed(0)
    softmax = Transformer(ModelConfig(d_model=16, num_heads=2), vocab_size=16, max_len=32)
    linear = Transformer(ModelConfig(d_model=16, num_heads=2, attention=attention.make_config("linear")),
                         vocab_size=16, max_len=32)
    # KV cache: layers x (k and v) x tokens x d_model x 4 bytes; linear: layers x heads x (F*d_h + F) x 4 bytes
    assert metrics.decode_state_bytes(softmax, 10) == 2 * 2 * 10 * 16 * 4
    assert metrics.decode_state_bytes(softmax, 20) == 2 * metrics.decode_state_bytes(softmax, 10)
    assert metrics.decode_state_bytes(linear, 10) == metrics.decode_state_bytes(linear, 20) == 2 * 2 * (8 * 8 + 8) * 4


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(tmp_path, monkeypatch):
    config = TrainConfig(steps=12, batch_size=8, warmup_steps=2, eval_every=4, target_accuracy=0.0)
    clean = train(TINY_TASK, TINY_MODEL, config, progress=False)
    calls = {"n": 0}
    forward = Transformer.forward

    def interrupted(self, idx):
        if self.training:
            calls["n"] += 1
            if calls["n"] == 10:  # after the checkpoint at step 8
                raise KeyboardInterrupt
        return forward(self, idx)

    monkeypatch.setattr(Transformer, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(TINY_TASK, TINY_MODEL, config, progress=False, checkpoint=tmp_path / "run.ckpt")
    assert torch.load(tmp_path / "run.ckpt", weights_only=False)["step"] == 8
    monkeypatch.setattr(Transformer, "forward", forward)
    resumed = train(TINY_TASK, TINY_MODEL, config, progress=False, checkpoint=tmp_path / "run.ckpt")
    assert resumed["curve"] == clean["curve"] and resumed["final"] == clean["final"]
    assert resumed["steps_run"] == 12


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler")
def test_a_compiled_forward_trains_like_the_eager_one():
    import synthetic
    from experiments import attention
    from experiments.model import ModelConfig
    from experiments.train import TrainConfig, train

    task = synthetic.make_config("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2, num_test_examples=16)
    model = ModelConfig(d_model=16, num_heads=2, num_layers=1, attention=attention.make_config("relu"))
    curves = [train(task, model, TrainConfig(steps=4, batch_size=8, eval_every=2, warmup_steps=1, target_accuracy=0,
                                             compile=mode, device="cpu"), progress=False)["curve"]
              for mode in ("none", "default")]
    for eager, compiled in zip(*curves):
        assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-5)
        assert compiled["test_loss"] == pytest.approx(eager["test_loss"], rel=1e-5)


def test_an_unknown_compile_mode_names_the_choices():
    from experiments.config import ConfigError
    from experiments.train import TrainConfig

    with pytest.raises(ConfigError, match="reduce-overhead"):
        TrainConfig(compile="fast")


def test_loss_spikes_count_jumps_above_the_best_interval_mean():
    from experiments.train import loss_spikes

    curve = [{"train_loss": 3.0}, {"train_loss": 0.4}]
    losses = torch.tensor([0.35, 0.5, 0.85, 0.95, 2.0, float("nan")])
    # best 0.4: a spike needs > 0.8 (2x) and > 0.9 (+0.5 nats): 0.95 and 2.0 count, 0.85 does not
    assert loss_spikes(losses, curve) == 2
    assert loss_spikes(losses, []) == 0  # the first interval has nothing to compare with
    low = [{"train_loss": 0.01}]
    assert loss_spikes(torch.tensor([0.03, 0.05]), low) == 0  # 3-5x a near-zero loss is noise, not a spike


# --- the plateau rule: train until test accuracy stops rising ---------------------------------------------------

def _scripted(monkeypatch, accuracies):
    """Make each evaluation during training report the next of ``accuracies`` (the final one is real)."""
    import experiments.train as training

    real, scripted = training.evaluate, iter(accuracies)

    def evaluate(model, task, test, *, autocast, detailed=False, **kwargs):
        scores = real(model, task, test, autocast=autocast, detailed=detailed, **kwargs)
        return scores if detailed else {**scores, "test_accuracy": next(scripted)}

    monkeypatch.setattr(training, "evaluate", evaluate)


def test_the_plateau_rule_stops_once_accuracy_stops_rising_and_not_before(monkeypatch):
    # learning threshold of TINY_TASK is well below 0.6; the accuracy climbs to 0.80 at evaluation 5, then
    # wobbles within 0.004 of it: the rule (3 evaluations, 0.005) must stop at evaluation 8, not earlier
    climb = [0.2, 0.4, 0.6, 0.7, 0.80, 0.798, 0.804, 0.801, 0.9, 0.9, 0.9, 0.9]
    _scripted(monkeypatch, climb)
    config = TrainConfig(steps=48, batch_size=8, warmup_steps=2, eval_every=4, target_accuracy=0.0,
                         plateau_evals=3, plateau_delta=0.005)
    result = train(TINY_TASK, TINY_MODEL, config, progress=False)
    assert result["status"] == "plateaued" and result["steps_run"] == 32, [p["test_accuracy"] for p in result["curve"]]


def test_the_plateau_rule_does_not_stop_in_a_dip(monkeypatch):
    # on the plateau from evaluation 5, but evaluation 8 dips to 0.70: stop at the next evaluation back on it
    _scripted(monkeypatch, [0.2, 0.4, 0.6, 0.7, 0.80, 0.798, 0.804, 0.70, 0.801, 0.9, 0.9, 0.9])
    config = TrainConfig(steps=48, batch_size=8, warmup_steps=2, eval_every=4, target_accuracy=0.0,
                         plateau_evals=3, plateau_delta=0.005)
    result = train(TINY_TASK, TINY_MODEL, config, progress=False)
    assert result["status"] == "plateaued" and result["steps_run"] == 36


def test_the_plateau_rule_waits_while_accuracy_rises_or_sits_below_the_learned_threshold(monkeypatch):
    from experiments.train import plateaued

    rising = [{"test_accuracy": a} for a in (0.5, 0.6, 0.61, 0.62, 0.63, 0.64)]  # +0.01 an evaluation
    assert not plateaued(rising, 3, 0.005, threshold=0.4)
    at_chance = [{"test_accuracy": 0.1}] * 10  # the flat stretch before learning starts
    assert not plateaued(at_chance, 3, 0.005, threshold=0.4)
    assert plateaued(at_chance, 3, 0.005, threshold=0.05)
    _scripted(monkeypatch, [0.1] * 12)  # never learns: runs to the cap, the rule never fires
    config = TrainConfig(steps=48, batch_size=8, warmup_steps=2, eval_every=4, target_accuracy=0.0,
                         plateau_evals=3)
    result = train(TINY_TASK, TINY_MODEL, config, progress=False)
    assert result["status"] == "finished" and result["steps_run"] == 48


def test_the_plateau_fields_leave_every_earlier_config_key_alone():
    from experiments.config import to_dict

    assert "plateau_evals" not in to_dict(TINY_TRAIN) and "plateau_delta" not in to_dict(TINY_TRAIN)
    with pytest.raises(ConfigError, match="plateau_evals"):
        TrainConfig(plateau_evals=-1)
