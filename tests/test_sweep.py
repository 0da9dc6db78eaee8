"""Sweeps, the result cache, atomic writes and the figure script."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import runs, sweep
from experiments.config import ConfigError
from experiments.io import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def test_every_sweep_module_declares_distinct_configs_for_every_profile():
    assert "mqar_pairs" in sweep.sweep_names()
    for name in sweep.sweep_names():
        module = sweep.load_sweep(name)
        for profile in module.PROFILES:
            configs = sweep.sweep_configs(name, profile)
            assert configs and all(isinstance(c, runs.RunConfig) for c in configs)


def test_mqar_pairs_covers_three_variants_and_several_pair_counts():
    configs = sweep.sweep_configs("mqar_pairs", "quick")
    assert {c.attention_name for c in configs} == {"softmax", "linear", "rela_g"}
    assert len({c.task.num_kv_pairs for c in configs}) >= 4


def test_unknown_sweep_or_profile_names_the_choices():
    with pytest.raises(ConfigError, match="valid names are \\[.*'mqar_pairs'"):
        sweep.sweep_configs("nope", "quick")
    with pytest.raises(ConfigError, match="valid profiles are \\['smoke', 'quick', 'full'\\]"):
        sweep.sweep_configs("mqar_pairs", "huge")


def test_smoke_sweep_collects_resumes_and_plots(tmp_path, monkeypatch):
    results, out_csv, out_png = tmp_path / "results", tmp_path / "figs" / "mqar_pairs.csv", tmp_path / "figs" / "f.png"
    assert sweep.main(["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(out_csv),
                       "--results-dir", str(results)]) == 0
    configs = sweep.sweep_configs("mqar_pairs", "smoke")
    with open(out_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(configs) == len(list(results.rglob("*.json")))
    assert {row["model.attention.name"] for row in rows} == {"softmax", "linear", "rela_g"}
    assert all(row["status"] in {"finished", "reached_target"} and row["test_accuracy"] for row in rows)

    # A second pass finds every result cached and trains nothing.
    monkeypatch.setattr(runs, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert sweep.main(["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(out_csv),
                       "--results-dir", str(results)]) == 0

    done = subprocess.run([sys.executable, str(ROOT / "paper_figs" / "plot_mqar_pairs.py"), str(out_csv), str(out_png)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out_png.parent.iterdir()) == ["f.png", "mqar_pairs.csv"], "temporary files left"


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_cache_key_depends_on_every_part_of_the_config():
    base = sweep.sweep_configs("mqar_pairs", "smoke")[0]
    import dataclasses

    changed = [
        dataclasses.replace(base, task=dataclasses.replace(base.task, power_a=0.5)),
        dataclasses.replace(base, model=dataclasses.replace(base.model, num_layers=3)),
        dataclasses.replace(base, train=dataclasses.replace(base.train, seed=9)),
    ]
    keys = {base.key(), *(c.key() for c in changed)}
    assert len(keys) == 4
    assert base.key() == runs.RunConfig.from_dict(base.to_dict()).key()


def test_a_truncated_result_file_is_redone(tmp_path, monkeypatch):
    config = sweep.sweep_configs("mqar_pairs", "smoke")[0]
    first, cached = runs.run(config, root=tmp_path, progress=False)
    path = runs.result_path(config, tmp_path)
    path.write_text(path.read_text()[:100])  # a crash outside the atomic write
    assert runs.load_result(config, tmp_path) is None
    again, cached = runs.run(config, root=tmp_path, progress=False)
    assert not cached and again["curve"] == first["curve"]
    assert runs.load_result(config, tmp_path)["key"] == config.key()


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    configs = sweep.sweep_configs("mqar_pairs", "smoke")
    bad = configs[2].key()
    real_train = runs.train

    def flaky(task, model, train_config, progress=True):
        from experiments.runs import RunConfig

        if RunConfig(task=task, model=model, train=train_config).key() == bad:
            raise RuntimeError("boom")
        return real_train(task, model, train_config, progress=progress)

    monkeypatch.setattr(runs, "train", flaky)
    argv = ["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(tmp_path / "out.csv"),
            "--results-dir", str(tmp_path / "results")]
    assert sweep.main(argv) == 1
    assert "1 run(s) failed" in capsys.readouterr().err
    failure = runs.failure_path(configs[2], tmp_path / "results")
    assert "RuntimeError: boom" in json.loads(failure.read_text())["error"]
    assert sum(runs.load_result(c, tmp_path / "results") is not None for c in configs) == len(configs) - 1
    assert not (tmp_path / "out.csv").exists()

    monkeypatch.setattr(runs, "train", real_train)  # the cause is fixed: only the failed run is done again
    assert sweep.main(argv) == 0
    assert not failure.exists() and (tmp_path / "out.csv").exists()
