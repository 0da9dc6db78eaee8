"""A run's kept weights: written beside its result, loaded back as the same model, inspected; every planted
file refused in one line and set aside by a rerun."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import save as save_tensors

import experiments
import synthetic
from experiments import attention, inspect as inspect_cli, weights
from experiments.cache import load_result, result_path
from experiments.model import ModelConfig
from experiments.runs import RunConfig, run
from experiments.train import TrainConfig, evaluate
from experiments.weights import WeightsError


def tiny(seed: int = 0) -> RunConfig:
    return RunConfig(task=synthetic.make_config("mqar", vocab_size=16, seq_len=16, num_kv_pairs=2,
                                                num_test_examples=32),
                     model=ModelConfig(d_model=16, num_heads=2, attention=attention.make_config("rela_g")),
                     train=TrainConfig(steps=6, batch_size=8, warmup_steps=1, eval_every=3, seed=seed,
                                       target_accuracy=0.0, device="cpu"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished runs (seeds 0 and 1) in a results folder."""
    root = tmp_path_factory.mktemp("results")
    for seed in (0, 1):
        run(tiny(seed), root=root, progress=False)
    return root


@pytest.fixture
def root(finished, tmp_path):
    """A copy of the finished runs' folder that a test may plant files in."""
    shutil.copytree(finished, tmp_path / "r")
    return tmp_path / "r"


def paths(root, seed: int = 0):
    result = result_path(tiny(seed), root)
    return result, result.with_suffix(weights.SUFFIX)


def test_a_finished_run_keeps_its_weights_named_by_its_result(finished):
    result_file, weights_file = paths(finished)
    result = json.loads(result_file.read_text())
    assert result["weights"]["file"] == weights_file.name
    assert result["weights"]["bytes"] == weights_file.stat().st_size < 200_000
    assert not result_file.with_suffix(".ckpt").exists()  # the checkpoint is gone, the weights stay


def test_load_run_gives_the_trained_model_that_scores_what_the_result_records(finished):
    result_file, _ = paths(finished)
    config, model = experiments.load_run(result_file, results_dir=finished)
    assert config == tiny(0) and not model.training
    recorded = load_result(config, finished)["final"]["test_accuracy"]
    with torch.no_grad():
        assert evaluate(model, config.task, synthetic.test_set(config.task), autocast=False)["test_accuracy"] \
            == recorded
    same, _ = experiments.load_run(config.key()[:10], results_dir=finished)  # by the start of its key
    assert same == config


def test_inspect_prints_the_recorded_accuracy_and_draws_every_head(finished, tmp_path, capsys):
    result_file, _ = paths(finished)
    out = tmp_path / "maps.png"
    assert inspect_cli.main([str(result_file), "--results-dir", str(finished), "--out", str(out), "--example", "2"]) == 0
    printed = capsys.readouterr().out
    recorded = json.loads(result_file.read_text())["final"]["test_accuracy"]
    assert f"recomputed test accuracy {recorded:.4f}" in printed and f"accuracy {recorded:.4f}" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "2 layers x 2 heads" in printed


def plant(kind: str, root, tmp_path):
    """Damage seed 0's weights file in one of the ways a shared folder can; returns the words its refusal uses."""
    result_file, weights_file = paths(root)
    if kind == "truncated":
        weights_file.write_bytes(weights_file.read_bytes()[:100])
        return "not the ones its result names"
    if kind == "another_runs":
        shutil.copy(paths(root, 1)[1], weights_file)
        return "not the ones its result names"
    if kind == "missing":
        weights_file.unlink()
        return "cannot be read"
    if kind == "link_out":
        outside = tmp_path / "elsewhere.safetensors"
        shutil.copy(weights_file, outside)
        weights_file.unlink()
        weights_file.symlink_to(outside)
        return "leads outside"
    if kind == "fifo":
        weights_file.unlink()
        os.mkfifo(weights_file)
        return "not a plain file"
    # another shape, with a result edited to name it: the shapes are checked against the config's model
    payload = save_tensors({"tokens.weight": torch.zeros(3, 3)})
    weights_file.write_bytes(payload)
    result = json.loads(result_file.read_text())
    result["weights"]["sha256"] = __import__("hashlib").sha256(payload).hexdigest()
    result_file.write_text(json.dumps(result))
    return "do not match its config's model"


KINDS = ["truncated", "another_runs", "missing", "link_out", "fifo", "another_shape"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_weights_file_is_refused_in_one_line(kind, root, tmp_path, capsys):
    words = plant(kind, root, tmp_path)
    with pytest.raises(WeightsError, match=words if kind != "another_shape" else "do not match"):
        experiments.load_run(paths(root)[0], results_dir=root)
    with pytest.raises(SystemExit) as ended:
        inspect_cli.main([str(paths(root)[0]), "--results-dir", str(root)])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_result_whose_weights_were_deleted_stays_a_result_with_no_model(root):
    result_file, weights_file = paths(root)
    weights_file.unlink()
    _, cached = run(tiny(0), root=root, progress=False)
    assert cached and not list(root.glob("mqar/*.corrupt-*"))
    with pytest.raises(WeightsError, match="cannot be read"):
        experiments.load_run(result_file, results_dir=root)


def test_a_weights_file_larger_than_its_result_says_is_not_read(root):
    result_file, weights_file = paths(root)
    weights_file.write_bytes(weights_file.read_bytes() + b"\0" * 4096)
    with pytest.raises(WeightsError, match="more than"):
        experiments.load_run(result_file, results_dir=root)


@pytest.mark.parametrize("kind", ["truncated", "another_runs", "fifo", "link_out"])
def test_a_rerun_sets_a_run_with_bad_weights_aside_and_trains_it_again(kind, root, tmp_path):
    plant(kind, root, tmp_path)
    result, cached = run(tiny(0), root=root, progress=False)
    assert not cached  # trained again, not loaded with weights that are not its own
    _, model = experiments.load_run(paths(root)[0], results_dir=root)
    assert list(root.glob("mqar/*.corrupt-*"))  # the old result and its weights, moved aside


def test_a_result_from_before_weights_were_kept_is_still_a_result_but_has_no_model(root):
    result_file, weights_file = paths(root)
    result = json.loads(result_file.read_text())
    del result["weights"]
    result_file.write_text(json.dumps(result))
    weights_file.unlink()
    assert load_result(tiny(0), root) is not None
    with pytest.raises(WeightsError, match="names no weights"):
        experiments.load_run(result_file, results_dir=root)


@pytest.mark.parametrize("run_name, words", [("results/x.txt", "not a result"), ("zz", "neither"),
                                             ("abc", "no result")])
def test_a_bad_run_name_is_one_line(root, run_name, words, capsys):
    with pytest.raises(SystemExit) as ended:
        inspect_cli.main([run_name if not run_name.endswith(".txt") else str(root / "x.json"),
                          "--results-dir", str(root)])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and len(err.strip().splitlines()) == 1
