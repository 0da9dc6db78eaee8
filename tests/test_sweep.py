"""Sweeps, the result cache, atomic writes and the figure script."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import subprocess_env

from experiments import cache, runs, sweep, sweeps
from experiments.config import ConfigError
from experiments.atomic import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def test_every_sweep_module_declares_distinct_configs_for_every_profile():
    assert "mqar_pairs" in sweeps.names()
    for name in sweeps.names():
        module = sweeps.load(name)
        for profile in module.PROFILES:
            configs = sweeps.configs(name, profile)
            assert configs and all(isinstance(c, runs.RunConfig) for c in configs)


def test_every_sweep_a_verdict_reads_has_three_seeds_and_the_others_two():
    from paper_figs.claims import LEDGER_SWEEPS, MIN_SEEDS

    for name in sweeps.names():
        for profile in ("quick", "full"):
            configs = sweeps.configs(name, profile)
            if name == "lr_search":
                continue  # a search over rates, not evidence: one seed per rate at quick
            least = MIN_SEEDS if name in LEDGER_SWEEPS or profile == "full" else 2
            assert len({c.train.seed for c in configs}) >= least, (name, profile)


def test_mqar_pairs_covers_the_variants_and_several_pair_counts():
    assert {c.attention_name for c in sweeps.configs("mqar_pairs", "full")} == {"softmax", "linear", "rela_g"}
    configs = sweeps.configs("mqar_pairs", "quick")
    assert {c.attention_name for c in configs} == {"softmax", "linear"}  # the pair D1 compares
    pairs = {c.task.num_kv_pairs for c in configs}
    head_dim = configs[0].model.d_model // configs[0].model.num_heads  # linear attention's feature dimension
    assert len(pairs) >= 3 and min(pairs) <= head_dim // 2 and max(pairs) > head_dim  # swept past the state
    assert len({c.train.seed for c in configs}) >= 2
    assert all(c.model.token_mixing == "shift" for c in configs)


def test_unknown_sweep_or_profile_names_the_choices():
    with pytest.raises(ConfigError, match="valid names are \\[.*'mqar_pairs'"):
        sweeps.configs("nope", "quick")
    with pytest.raises(ConfigError, match="valid profiles are \\['smoke', 'quick', 'deep', 'full'\\]"):
        sweeps.configs("mqar_pairs", "huge")


def test_smoke_sweep_collects_resumes_and_plots(tmp_path, monkeypatch):
    results, out_csv, out_png = tmp_path / "results", tmp_path / "figs" / "mqar_pairs.csv", tmp_path / "figs" / "f.png"
    assert sweep.main(["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(out_csv),
                       "--results-dir", str(results)]) == 0
    configs = sweeps.configs("mqar_pairs", "smoke")
    with open(out_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(configs) == len(list(results.rglob("*.json")))
    assert {row["model.attention.name"] for row in rows} == {"softmax", "linear", "rela_g"}
    assert all(row["status"] in {"finished", "reached_target"} and row["test_accuracy"] for row in rows)
    for row, config in zip(rows, configs):  # every row says whether its run cleared the task's learned threshold
        assert float(row["chance"]) == pytest.approx(1 / config.task.num_kv_pairs)
        assert float(row["learned_threshold"]) == pytest.approx((1 + float(row["chance"])) / 2)
        assert row["learned"] == str(int(float(row["test_accuracy"]) >= float(row["learned_threshold"])))
        assert row["model.token_mixing"] == "shift" and int(row["loss_spikes"]) >= 0

    # A second pass finds every result cached and trains nothing.
    monkeypatch.setattr(runs, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert sweep.main(["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(out_csv),
                       "--results-dir", str(results)]) == 0

    done = subprocess.run([sys.executable, "-m", "paper_figs.plot_mqar_pairs", str(out_csv), str(out_png)],
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
    base = sweeps.configs("mqar_pairs", "smoke")[0]
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
    config = sweeps.configs("mqar_pairs", "smoke")[0]
    first, cached = runs.run(config, root=tmp_path, progress=False)
    path = cache.result_path(config, tmp_path)
    path.write_text(path.read_text()[:100])  # a crash outside the atomic write
    assert cache.load_result(config, tmp_path) is None
    again, cached = runs.run(config, root=tmp_path, progress=False)
    assert not cached and again["curve"] == first["curve"]
    assert cache.load_result(config, tmp_path)["key"] == config.key()


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    configs = sweeps.configs("mqar_pairs", "smoke")
    bad = configs[2].key()
    real_train = runs.train

    def flaky(task, model, train_config, **kwargs):
        from experiments.runs import RunConfig

        if RunConfig(task=task, model=model, train=train_config).key() == bad:
            raise RuntimeError("boom")
        return real_train(task, model, train_config, **kwargs)

    monkeypatch.setattr(runs, "train", flaky)
    argv = ["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(tmp_path / "out.csv"),
            "--results-dir", str(tmp_path / "results")]
    assert sweep.main(argv) == 1
    assert "1 run(s) failed" in capsys.readouterr().err
    failure = cache.failure_path(configs[2], tmp_path / "results")
    assert "RuntimeError: boom" in json.loads(failure.read_text())["error"]
    assert sum(cache.load_result(c, tmp_path / "results") is not None for c in configs) == len(configs) - 1
    assert not (tmp_path / "out.csv").exists()

    monkeypatch.setattr(runs, "train", real_train)  # the cause is fixed: only the failed run is done again
    assert sweep.main(argv) == 0
    assert not failure.exists() and (tmp_path / "out.csv").exists()


def test_a_stale_lock_is_taken_over_and_a_live_one_is_respected(tmp_path, live_pid):
    import platform

    config = sweeps.configs("mqar_pairs", "smoke")[0]
    lock = cache.result_path(config, tmp_path).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{platform.node()} {live_pid}")  # held by a live process that keeps it fresh
    with pytest.raises(cache.Locked):
        runs.run(config, root=tmp_path, progress=False, wait=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{platform.node()} {dead.pid}")  # its holder has exited
    result, cached = runs.run(config, root=tmp_path, progress=False, wait=False)
    assert not cached and result["key"] == config.key() and not lock.exists()


def _sweep_process(results, csv_path):
    env = subprocess_env()
    return subprocess.Popen([sys.executable, "-m", "experiments.sweep", "mqar_width", "--profile", "smoke",
                             "--workers", "1", "--csv", str(csv_path), "--results-dir", str(results)],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_runners_do_each_run_once(tmp_path):
    first, second = _sweep_process(tmp_path / "r", tmp_path / "a.csv"), _sweep_process(tmp_path / "r", tmp_path / "b.csv")
    logs = [p.communicate(timeout=300)[1] for p in (first, second)]
    assert first.returncode == second.returncode == 0, logs
    trained = [{line.split("] run ")[1].split()[0] for line in log.splitlines() if "] run " in line}
               for log in logs]
    configs = sweeps.configs("mqar_width", "smoke")
    assert not trained[0] & trained[1], "a run was trained by both runners"
    assert trained[0] | trained[1] == {c.run_id() for c in configs}
    assert (tmp_path / "a.csv").read_text().split("\n")[1:] == (tmp_path / "b.csv").read_text().split("\n")[1:]


def test_a_run_killed_mid_way_leaves_no_result_and_reruns_identically(tmp_path):
    import signal
    import time

    argv = ["--task", "mqar", "--vocab-size", "16", "--seq-len", "16", "--num-kv-pairs", "2", "--d-model", "16",
            "--num-heads", "2", "--steps", "300", "--eval-every", "50", "--batch-size", "8",
            "--num-test-examples", "16", "--target-accuracy", "0", "--no-progress"]
    env = subprocess_env()
    victim = subprocess.Popen([sys.executable, "-m", "experiments.run", *argv, "--results-dir", str(tmp_path / "a")],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list((tmp_path / "a").rglob("*.ckpt")) and time.time() < deadline:
        time.sleep(0.05)  # wait until the run is under way (its first checkpoint, 250 steps before its end)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not list((tmp_path / "a").rglob("*.json")), "a killed run left a result file"
    for root in (tmp_path / "a", tmp_path / "b"):  # rerun after the kill, and an uninterrupted run elsewhere
        done = subprocess.run([sys.executable, "-m", "experiments.run", *argv, "--results-dir", str(root)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    resumed, clean = (json.loads(next((tmp_path / d).rglob("*.json")).read_text()) for d in ("a", "b"))
    assert resumed["curve"] == clean["curve"] and resumed["final"] == clean["final"]
    assert not list((tmp_path / "a").rglob("*.lock"))


def test_a_diverged_run_never_counts_as_learned():
    config = next(c for c in sweeps.configs("mqar_pairs", "smoke") if c.task.num_kv_pairs > 1)
    fine = {"status": "finished", "final": {"test_accuracy": 1.0}}
    assert runs.learning(config, fine)["learned"] == 1
    assert runs.learning(config, {**fine, "status": "diverged"})["learned"] == 0
    assert runs.learning(config, {"status": "diverged", "final": {}})["learned"] == 0
    at_chance = {"status": "finished", "final": {"test_accuracy": 1 / config.task.num_kv_pairs}}
    assert runs.learning(config, at_chance)["learned"] == 0


def test_shards_split_a_sweep_into_disjoint_chunks_that_resume(tmp_path, monkeypatch, capsys):
    results = str(tmp_path / "results")
    configs = sweeps.configs("mqar_pairs", "smoke")
    assert sweep.main(["mqar_pairs", "--profile", "smoke", "--shard", "2/2", "--list"]) == 0
    assert capsys.readouterr().out.split() == [c.run_id() for c in configs[1::2]]
    assert sweep.main(["mqar_pairs", "--profile", "smoke", "--shard", "1/2", "--workers", "1",
                       "--results-dir", results]) == 0
    done = {p.stem for p in (tmp_path / "results").rglob("*.json")}
    assert done == {c.key()[:16] for c in configs[0::2]}
    assert f"[{len(done)}/{len(configs)} done" in capsys.readouterr().err
    for bad in ("0/2", "3/2", "1/0", "a/b", "1/2/3", "1e3/2", ""):
        with pytest.raises(SystemExit) as exit_info:
            sweep.main(["mqar_pairs", "--profile", "smoke", "--shard", bad, "--list"])
        assert exit_info.value.code == 2
