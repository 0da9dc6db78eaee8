"""Live tracking: TensorBoard events that equal the result's curve, W&B's absence in one line, no writing
through a link out of the results folder."""

from __future__ import annotations

import json

import pytest

from experiments import run as run_cli
from experiments import sweep, tracking
from experiments.config import ConfigError

SMALL = ["--task", "mqar", "--attention", "softmax", "--recipe", "none", "--vocab-size", "16", "--seq-len", "16",
         "--num-kv-pairs", "2", "--num-test-examples", "32", "--d-model", "16", "--num-heads", "2",
         "--warmup-steps", "5", "--eval-every", "10", "--target-accuracy", "0", "--no-progress"]


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the event files in ``folder``, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_50_step_run_logs_its_curve_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    root = tmp_path / "results"
    assert run_cli.main([*SMALL, "--steps", "50", "--results-dir", str(root), "--log", "tensorboard"]) == 0
    result = json.loads(next((root / "mqar").glob("*.json")).read_text())
    logged = scalars(root / "tensorboard" / result["run_id"])
    for metric in ("test_accuracy", "train_loss", "lr", "grad_norm_max"):
        expected = [(p["step"], p[metric]) for p in result["curve"]]
        assert [s for s, _ in logged[metric]] == [s for s, _ in expected] == [10, 20, 30, 40, 50]
        assert [v for _, v in logged[metric]] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert "output_ratio.0" in logged  # a probe, per layer


def test_a_sweep_groups_its_runs_under_its_name(tmp_path):
    pytest.importorskip("tensorboard")
    root = tmp_path / "results"
    assert sweep.main(["sinks", "--profile", "smoke", "--workers", "1", "--results-dir", str(root),
                       "--csv", str(tmp_path / "s.csv"), "--log", "tensorboard"]) == 0
    runs = sorted(p.name for p in (root / "tensorboard" / "sinks").iterdir())
    assert len(runs) == 5 and all(name.startswith("bigram_backcopy-") for name in runs)


def test_wandb_not_installed_is_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(SystemExit) as ended:
        run_cli.main([*SMALL, "--steps", "5", "--results-dir", str(tmp_path / "r"), "--log", "wandb"])
    err = capsys.readouterr().err.strip()
    assert ended.value.code == 2
    assert len(err.splitlines()) == 1 and "attention-normalisation[wandb]" in err
    assert not (tmp_path / "r").exists()  # nothing ran, nothing was written to the cache
    with pytest.raises(SystemExit) as ended:
        sweep.main(["sinks", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), "--csv",
                    str(tmp_path / "s.csv"), "--log", "wandb"])
    assert ended.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_event_folder_that_links_out_of_the_results_folder_is_refused(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    root, outside = tmp_path / "results", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "tensorboard").symlink_to(outside)
    with pytest.raises(ConfigError, match="link"):
        tracking.log_folder(root, "some-run", None)
    with pytest.raises(SystemExit) as ended:
        run_cli.main([*SMALL, "--steps", "5", "--results-dir", str(root), "--log", "tensorboard"])
    assert ended.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not list(outside.iterdir()) and not (root / "mqar").exists()
    with pytest.raises(SystemExit) as ended:  # a sweep refuses it before its first run, as the run does
        sweep.main(["sinks", "--profile", "smoke", "--results-dir", str(root), "--csv", str(tmp_path / "s.csv"),
                    "--log", "tensorboard"])
    assert ended.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not list(outside.iterdir()) and not (root / "bigram_backcopy").exists()


def test_numbers_flattens_a_point_without_its_step():
    point = {"step": 10, "loss": 1.5, "output_ratio": [0.5, 2.0], "slices": {"a": 0.25}, "ok": True, "name": "x"}
    assert tracking.numbers(point) == {"loss": 1.5, "output_ratio.0": 0.5, "output_ratio.1": 2.0, "slices.a": 0.25}
