"""Faults a shared results folder or a careless command line can bring: each is contained, none takes a sweep over.

One test per fault: a planted pickle in a checkpoint, divergence at an
evaluation, an out-of-range learning rate, lock files that cannot be
trusted, files of the wrong shape at a result path, Ctrl-C.
"""

from __future__ import annotations

import dataclasses

import json
import math
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from helpers import subprocess_env
import torch

import experiments
from experiments import cache, runs, sweep, sweep_files, sweeps, train
from experiments.config import ConfigError
from experiments.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def smoke_config():
    return next(c for c in sweeps.configs("mqar_pairs", "smoke") if c.task.num_kv_pairs > 1)


class Planted:
    """Unpickling this writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def test_a_planted_pickle_checkpoint_runs_no_code_and_is_set_aside(tmp_path, capsys):
    config = smoke_config()
    marker = tmp_path / "pwned"
    checkpoint = cache.result_path(config, tmp_path).with_suffix(".ckpt")
    checkpoint.parent.mkdir(parents=True)
    torch.save({"model": Planted(str(marker)), "step": 1}, checkpoint)
    result, cached = runs.run(config, root=tmp_path, progress=False)
    assert not marker.exists(), "loading the checkpoint ran code"
    assert not cached and result["status"] in ("finished", "reached_target")
    assert len(list(checkpoint.parent.glob("*.ckpt.corrupt-*"))) == 1
    assert capsys.readouterr().err.count("moved aside") == 1


def test_a_checkpoint_written_by_training_loads_safely_and_resumes(tmp_path):
    config = smoke_config()
    checkpoint = tmp_path / "run.ckpt"
    first = train.train(config.task, config.model, config.train, progress=False, checkpoint=checkpoint)
    saved = torch.load(checkpoint, weights_only=True)  # tensors and plain types only
    assert saved["step"] == first["steps_run"] and saved["train_seconds"] > 0
    saved["train_seconds"] = 1000.0  # as if the earlier part had run for 1000 s before an interrupt
    torch.save(saved, checkpoint)
    resumed = train.train(config.task, config.model, config.train, progress=False, checkpoint=checkpoint)
    assert resumed["steps_run"] == first["steps_run"] and 1000.0 <= resumed["train_seconds"] < 1000.0 + 60
    assert resumed["final"] == first["final"]  # resuming a finished run changes nothing but the clock


def test_a_non_finite_test_loss_at_an_evaluation_is_a_divergence_not_a_crash_loop(tmp_path, monkeypatch):
    config = smoke_config()
    real = train.evaluate
    calls = []

    def overflowing(*args, **kwargs):
        scores = real(*args, **kwargs)
        calls.append(1)
        return {**scores, "test_loss": math.inf} if len(calls) == 2 else scores

    monkeypatch.setattr(train, "evaluate", overflowing)
    result, _ = runs.run(config, root=tmp_path, progress=False)
    assert result["status"] == "diverged" and result["diverged_at_step"] == 2 * config.train.eval_every
    assert result["final"]["last_finite"]["step"] == config.train.eval_every
    written = json.loads(cache.result_path(config, tmp_path).read_text())  # strict JSON: no NaN, no Infinity
    assert written["status"] == "diverged"
    assert not cache.result_path(config, tmp_path).with_suffix(".ckpt").exists()
    monkeypatch.setattr(train, "evaluate", real)
    again, cached = runs.run(config, root=tmp_path, progress=False, force=True)  # --force starts clean
    assert not cached and again["status"] != "diverged"


def test_non_finite_numbers_are_written_as_null_with_their_field_named():
    data, bad = runs.finite_json({"a": 1.0, "b": [0.5, math.nan], "c": {"d": -math.inf}, "e": "x"})
    assert data == {"a": 1.0, "b": [0.5, None], "c": {"d": None}, "e": "x"}
    assert bad == ["b[1]", "c.d"]


@pytest.mark.parametrize("lr", [1e38, 1e10, math.inf, math.nan, 0.0, -1e-3])
def test_learning_rates_outside_the_stated_range_are_refused(lr):
    with pytest.raises(ConfigError, match=r"lr must be in \(0, 10\]"):
        TrainConfig(lr=lr)


@pytest.mark.parametrize("content", ["", "garbage", "host", "a b c", "\x00\xff"])
def test_a_lock_that_does_not_parse_is_nobodys(tmp_path, content):
    lock = tmp_path / "x.lock"
    lock.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert not cache.holder_alive(lock)  # acquire() never shows a lock before its content: nobody wrote this one


def test_a_parsed_lock_is_stale_once_its_heartbeat_stops(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(f"{platform.node()} 1")  # pid 1 is alive, but it is no runner
    assert cache.holder_alive(lock)  # fresh: its holder may be alive
    old = time.time() - cache.STALE_AFTER_SECONDS - 1
    os.utime(lock, (old, old))
    assert not cache.holder_alive(lock)  # nobody refreshed it, so nobody holds it


def test_a_lock_dated_in_the_future_is_stale(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(f"other-host {os.getpid()}")
    ahead = time.time() + 10 * 365 * 86400  # ten years ahead: it would otherwise stay fresh until then
    os.utime(lock, (ahead, ahead))
    assert not cache.holder_alive(lock)
    soon = time.time() + 60  # a minute of clock skew between hosts is still a heartbeat
    os.utime(lock, (soon, soon))
    assert cache.holder_alive(lock)


def test_a_directory_at_the_lock_path_is_moved_aside_once(tmp_path, capsys):
    lock = tmp_path / "runs" / "x.lock"
    (lock / "inside").mkdir(parents=True)
    assert cache.acquire(lock) and lock.is_file()
    assert lock.read_text() == f"{platform.node()} {os.getpid()}"
    assert capsys.readouterr().err.count("is a directory where a lock file belongs") == 1
    assert len(list(lock.parent.glob("x.lock.corrupt-*"))) == 1


def test_a_lock_whose_write_fails_leaves_no_lock_behind(tmp_path, monkeypatch):
    lock = tmp_path / "x.lock"
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.handle = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def write(self, text):
            raise OSError(28, "No space left on device")

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(os, "fdopen", Full)
    with pytest.raises(OSError, match=f"no space left in {tmp_path}"):
        cache.acquire(lock)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # neither an empty lock nor its private file
    assert cache.acquire(lock)


def test_a_lock_naming_this_process_is_never_waited_on(tmp_path):
    config = smoke_config()
    lock = cache.lock_path(config, tmp_path)
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{platform.node()} {os.getpid()}")
    result, cached = runs.run(config, root=tmp_path, progress=False, wait=True, lock_timeout=5)
    assert not cached and not lock.exists()


def test_waiting_for_a_live_lock_says_who_holds_it_and_is_bounded_by_the_lock_timeout(tmp_path, live_pid,
                                                                                      monkeypatch, capsys):
    monkeypatch.setattr(cache, "WAIT_REPORT_SECONDS", 0.2)  # the once-a-minute line, sped up
    config = smoke_config()
    lock = cache.lock_path(config, tmp_path)
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{platform.node()} {live_pid}")
    started = time.monotonic()
    with pytest.raises(cache.LockTimeout, match=f"pid {live_pid}"):
        runs.run(config, root=tmp_path, progress=False, lock_timeout=0.7, poll_seconds=0.1)
    assert time.monotonic() - started < 5
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("waiting for")]
    assert 2 <= len(said) <= 4 and all(f"held by pid {live_pid}" in line for line in said)
    assert not cache.result_path(config, tmp_path).exists()


@pytest.mark.parametrize("plant", ["list", "shape", "folder", "binary"])
def test_a_wrong_file_at_a_result_path_is_set_aside_once_and_the_run_redone(tmp_path, capsys, plant):
    config = smoke_config()
    path = cache.result_path(config, tmp_path)
    path.parent.mkdir(parents=True)
    if plant == "list":
        path.write_text("[1, 2, 3]")
    elif plant == "shape":
        path.write_text(json.dumps({"key": config.key(), "config": {}, "status": "finished", "final": [],
                                    "curve": []}))
    elif plant == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\x80\x81\xff")
    result, cached = runs.run(config, root=tmp_path, progress=False)
    assert not cached and result["key"] == config.key()
    assert json.loads(path.read_text())["key"] == config.key()
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1
    assert capsys.readouterr().err.count("moved aside") == 1


def test_ctrl_c_in_a_sweep_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_all", interrupted)
    code = sweep.main(["mqar_pairs", "--profile", "smoke", "--workers", "1", "--csv", str(tmp_path / "o.csv"),
                       "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "resume with:" in err


def tiny_sweep(path: Path, *, steps: int, seeds: int, eval_every: int) -> Path:
    """A sweep file of ``seeds`` tiny MQAR runs of ``steps`` steps each (seconds apiece on one thread)."""
    path.write_text(json.dumps({
        "base": {"task": {"name": "mqar", "vocab_size": 16, "seq_len": 16, "num_kv_pairs": 2, "num_test_examples": 32},
                 "model": {"d_model": 16, "num_heads": 2},
                 "train": {"steps": steps, "batch_size": 8, "warmup_steps": 1, "eval_every": eval_every,
                           "target_accuracy": 0.0}},
        "grid": {"train.seed": list(range(seeds))}}))
    return path


@pytest.mark.parametrize("signum", [2, 15])  # Ctrl-C, and a scheduler's or kill's TERM
def test_an_interrupted_sweep_stops_its_workers_and_resumes(tmp_path, signum):
    tiny_sweep(tmp_path / "s.json", steps=300, seeds=4, eval_every=50)
    env = subprocess_env()
    argv = [sys.executable, "-m", "experiments.sweep", str(tmp_path / "s.json"), "--workers", "2",
            "--csv", str(tmp_path / "o.csv"), "--results-dir", str(tmp_path / "r")]
    import signal

    # a test runner may ignore SIGINT, and an ignored signal is inherited: give the sweep the default, as a shell does
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list((tmp_path / "r").rglob("*.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.05)  # interrupt once a run is under way and has checkpointed
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the sweep finished before the interrupt")
    assert process.returncode == 130 and "Traceback" not in err and "leaked" not in err, err
    assert sum("resume with:" in line for line in err.splitlines()) == 1
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "r")], capture_output=True, text=True).stdout
    assert not leftover.strip(), "workers outlived the interrupted sweep"
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = subprocess_env()
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("flags, message", [
    (["--num-layers", "99999999999"], "num_layers=99999999999 is out of range"),
    (["--power-a", "inf"], "power_a must be finite"),
    (["--weight-decay", "nan"], "weight_decay must be"),
    (["--steps", "99999999999999"], "steps=99999999999999 is out of range"),
    (["--d-model", "100000"], "needs about"),
    (["--task", "memorisation", "--key-tokens", "99999999999"], "key_tokens=99999999999 is out of range"),
    (["--task", "memorisation", "--key-tokens", "9"], "key_tokens must be in [1, 8]"),
    (["--results-dir", ""], "--results-dir is empty"),
    (["--lock-timeout", "inf"], "--lock-timeout: must be in [0, 1e7] seconds"),
    (["--task", "selective_copying", "--test-lengths=64"], "selective_copying has none"),  # a derived seq_len
])
def test_numbers_that_would_hang_or_crash_are_refused_at_parse_time_in_one_line(flags, message, capsys):
    from experiments import run

    started = time.monotonic()
    dry = [] if "--results-dir" in flags else ["--dry-run"]  # an empty results folder matters only for a real run
    try:  # the command line's own entry point, in this process (argparse's refusals exit)
        code = run.main([*dry, "--warmup-steps", "0", *flags])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err
    assert time.monotonic() - started < 30


def test_a_file_in_place_of_the_results_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for target, message in ((tmp_path / "file", "is not a folder"), (tmp_path / "file" / "sub", "cannot be created")):
        done = cli("experiments.run", "--steps", "2", "--warmup-steps", "0", "--results-dir", str(target))
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_the_memory_estimate_grows_with_the_config_and_passes_the_recipe():
    small = smoke_config()
    wide = runs.RunConfig.from_dict({**small.to_dict(), "model": {**small.to_dict()["model"], "d_model": 4096}})
    assert runs.estimated_bytes(wide)["total"] > 100 * runs.estimated_bytes(small)["total"]
    for config in sweeps.configs("mqar_pairs", "quick"):
        runs.check_fits(config)  # the quick profile fits this machine by a wide margin


def test_the_full_long_context_sweep_fits_an_80_gb_gpu_and_a_held_map_still_counts():
    # evaluation holds no gradients and one layer at a time; neither SDPA nor the fused kernel keeps a T x T
    # map: counted as training with maps, T=2048 came to about 100 GiB
    gpu = 80 * 10**9
    for config in sweeps.configs("long_context", "full"):
        need = runs.estimated_bytes(config.on("cuda"))["total"]
        assert need < 0.9 * gpu, f"{config.run_id()}: {need / 2**30:.1f} GiB"
    longest = max((c for c in sweeps.configs("long_context", "full") if c.attention_name == "reluformer"),
                  key=lambda c: c.task.seq_len).on("cuda")
    attention = longest.model.attention
    materialised = dataclasses.replace(longest, model=dataclasses.replace(
        longest.model, attention=dataclasses.replace(attention, form="materialised")))
    held = runs.estimated_bytes(materialised)["activations"] - runs.estimated_bytes(longest)["activations"]
    assert held > 3 * 4 * longest.train.batch_size * longest.model.num_heads * longest.task.seq_len**2  # 3 maps


def test_the_memory_estimate_counts_evaluation_at_the_longest_test_length():
    small = smoke_config()
    data = small.to_dict()
    data["model"]["positions"] = "none"
    data["train"]["test_lengths"] = [8 * small.task.seq_len]
    longer = runs.RunConfig.from_dict(data)
    assert runs.estimated_bytes(longer)["total"] > runs.estimated_bytes(small)["total"]


@pytest.mark.parametrize("grid, message", [
    ({"train.steps": ["5"]}, "train.steps must be int, got str '5'"),
    ({"train.steps": [True]}, "train.steps must be int, got True"),
    ({"task.power_a": ["inf"]}, "task.power_a must be float, got str"),
    ({"model.attention.name": ["rela"], "model.attention.eps": ["x"]}, "model.attention.eps must be float, got str"),
    ({}, "'grid' is empty"),
    ({"train.seed": list(range(101)), "train.lr": [1e-3] * 0 + [1e-3 * (i + 1) for i in range(100)]},
     "10100 runs; more than 10000 needs --allow-large"),
])
def test_sweep_files_are_type_checked_and_bounded(tmp_path, grid, message):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"base": {"task": {"name": "mqar"}}, "grid": grid}))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        sweep.file_configs(path)


def test_status_of_a_large_sweep_file_streams_in_constant_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep_files, "MAX_RUNS", 500)  # the cap, scaled down with the sweep so the test stays short
    peaks = {}
    for size in (1000, 4000):
        path = tmp_path / f"s{size}.json"
        path.write_text(json.dumps({"base": {"task": {"name": "mqar", "seq_len": 16, "vocab_size": 16,
                                                      "num_kv_pairs": 2}}, "grid": {"train.seed": list(range(size))}}))
        with pytest.raises(SystemExit) as refused:
            sweep.main([str(path), "--status", "--results-dir", str(tmp_path / "r")])
        assert refused.value.code == 2 and "needs --allow-large" in capsys.readouterr().err
        tracemalloc.start()
        assert sweep.main([str(path), "--status", "--allow-large", "--results-dir", str(tmp_path / "r")]) == 0
        peaks[size] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert capsys.readouterr().out.strip() == f"[0/{size} done, 0 running, 0 failed, ETA ?]"
    # holding the configs would take 4x the memory for 4x the runs (about 0.9 kB each); streaming holds one
    assert peaks[4000] < 1.3 * peaks[1000], peaks


def test_a_worker_killed_mid_sweep_loses_only_its_own_run(tmp_path):
    tiny_sweep(tmp_path / "s.json", steps=200, seeds=6, eval_every=50)
    results = tmp_path / "r"
    env = subprocess_env()
    process = subprocess.Popen([sys.executable, "-m", "experiments.sweep", str(tmp_path / "s.json"), "--workers", "2",
                                "--csv", str(tmp_path / "o.csv"), "--results-dir", str(results)],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for lock in results.rglob("*.lock"):
            host, pid, _ = cache.read_lock(lock)
            if pid is not None:
                victim = pid
                break
        time.sleep(0.05)
    assert victim is not None, "no run started"
    os.kill(victim, 9)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1 and "Traceback" not in err, err
    assert len(list(results.rglob("*.json"))) - len(list(results.rglob("*.failed.json"))) == 5
    failures = list(results.rglob("*.failed.json"))
    assert len(failures) == 1 and "worker died: signal 9" in json.loads(failures[0].read_text())["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fused form runs where CUDA is")
@pytest.mark.parametrize("flags, message", [
    (["--attention", "relu", "--form", "fused"], "form=fused needs Triton and a CUDA device"),
    (["--attention", "linear", "--feature-map", "cosformer", "--cos-max-len", "16", "--seq-len", "64"],
     "cos_max_len=16 must be at least the longest sequence, 64 tokens"),
])
def test_options_that_would_fail_mid_training_are_refused_before_it(flags, message, tmp_path):
    done = cli("experiments.run", *flags, "--steps", "2", "--warmup-steps", "0", "--results-dir", str(tmp_path))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.json"))
    spec = {"base": {"task": {"name": "mqar", "seq_len": 64}, "train": {"steps": 2, "warmup_steps": 0}},
            "runs": [{"model": {"attention": {"name": "relu"}}}, {"model": {"attention": {"name": "relu",
                                                                                            "form": "fused"}}}]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    done = cli("experiments.sweep", str(tmp_path / "s.json"), "--csv", str(tmp_path / "o.csv"),
               "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "form=fused" in done.stderr
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.json"))  # not even the good run


def test_a_directory_at_the_failure_record_path_does_not_lose_the_trained_result(tmp_path, capsys):
    config = smoke_config()
    failed = cache.failure_path(config, tmp_path)
    (failed / "planted").mkdir(parents=True)
    result, cached = runs.run(config, root=tmp_path, progress=False)
    assert not cached and cache.load_result(config, tmp_path) == result
    assert not failed.exists() and len(list(failed.parent.glob(failed.name + ".corrupt-*"))) == 1
    assert capsys.readouterr().err.count("is a directory where a file of the result cache belongs") == 1
    (failed / "again").mkdir(parents=True)
    cache.record_failure(config, "worker died: signal 9", tmp_path)  # the failure handler itself
    assert failed.is_file()


def test_a_directory_at_the_result_path_is_moved_aside_and_the_result_written(tmp_path):
    config = smoke_config()
    path = cache.result_path(config, tmp_path)
    (path / "planted").mkdir(parents=True)
    result, cached = runs.run(config, root=tmp_path, progress=False)
    assert not cached and path.is_file() and cache.load_result(config, tmp_path) == result


@pytest.mark.parametrize("argv", [
    ["--task", "mqar", "--num-test-examples", "1000000000"],
    ["--task", "mqar", "--attention", "linear", "model.attention.feature_map=performer",
     "model.attention.num_features=1000000000"],
    ["--task", "mqar", "--attention", "linear", "model.attention.feature_map=dpfp", "model.attention.dpfp_nu=1000000000"],
])
def test_a_config_whose_test_set_or_features_cannot_fit_is_refused_at_parse_time(tmp_path, argv, capsys):
    from experiments import run as run_cli

    with pytest.raises(SystemExit) as stopped:
        run_cli.main([*argv, "--dry-run", "--results-dir", str(tmp_path / "results")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GiB" in err[0] and "num_test_examples" in err[0]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def _poison_moment(saved):
    first = next(iter(saved["optimizer"]["state"].values()))
    first["exp_avg"] = torch.zeros(3, 3, 3)


def _poison_curve(saved):
    saved["curve"][0]["test_accuracy"] = "1.0"


def _poison_step_low(saved):
    saved["step"] = -1_000_000


def _poison_step_high(saved):
    saved["step"] = 10**18


def _poison_rate(saved):
    saved["schedule"]["base_lrs"] = [1e30, 1e30]
    for group in saved["optimizer"]["param_groups"]:
        group["lr"] = 1e30


@pytest.mark.parametrize("poison", [_poison_moment, _poison_curve, _poison_step_low, _poison_step_high, _poison_rate])
def test_a_checkpoint_that_loads_but_is_not_this_runs_is_set_aside(tmp_path, capsys, poison):
    config = smoke_config()
    checkpoint = tmp_path / "run.ckpt"
    first = train.train(config.task, config.model, config.train, progress=False, checkpoint=checkpoint)
    saved = torch.load(checkpoint, weights_only=True)
    poison(saved)
    torch.save(saved, checkpoint)
    again = train.train(config.task, config.model, config.train, progress=False, checkpoint=checkpoint)
    assert again["final"] == first["final"] and again["steps_run"] == first["steps_run"]  # trained afresh
    assert len(list(tmp_path.glob("run.ckpt.corrupt-*"))) == 1
    assert capsys.readouterr().err.count("does not load as a checkpoint of this run") == 1


def test_a_fifo_at_the_checkpoint_or_lock_path_does_not_hang_the_run(tmp_path, capsys):
    config = smoke_config()
    checkpoint = cache.result_path(config, tmp_path).with_suffix(".ckpt")
    checkpoint.parent.mkdir(parents=True)
    os.mkfifo(checkpoint)
    os.mkfifo(cache.lock_path(config, tmp_path))
    result, cached = runs.run(config, root=tmp_path, progress=False, lock_timeout=5)
    assert not cached and result["status"] in ("finished", "reached_target")
    assert len(list(checkpoint.parent.glob("*.ckpt.corrupt-*"))) == 1


def test_half_written_files_a_killed_run_left_are_removed_by_the_next(tmp_path):
    config = smoke_config()
    result_file = cache.result_path(config, tmp_path)
    result_file.parent.mkdir(parents=True)
    stem = result_file.stem
    leftovers = [result_file.parent / f".{stem}.k2j3.tmp.json", result_file.parent / f".{stem}.x9.tmp.ckpt"]
    lock_tmp = cache.lock_path(config, tmp_path).with_name(f"{stem}.lock.4242.tmp")
    fresh_lock_tmp = cache.lock_path(config, tmp_path).with_name(f"{stem}.lock.4243.tmp")
    other = result_file.parent / ".0123456789abcdef.k2j3.tmp.json"  # another run's: not ours to remove
    for path in (*leftovers, lock_tmp, fresh_lock_tmp, other):
        path.write_text("half")
    old = time.time() - 120
    os.utime(lock_tmp, (old, old))
    runs.run(config, root=tmp_path, progress=False)
    assert not any(p.exists() for p in (*leftovers, lock_tmp))
    assert fresh_lock_tmp.exists() and other.exists()  # a live acquirer's, and another run's


# --- every kind of planted file at every path a run reads ----------------------------------------------------

def _plant(path: Path, kind: str, outside: Path, config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link_outside":
        path.symlink_to(outside)
    elif kind == "link_inside":
        sibling = path.parent / "sibling.json"
        sibling.write_text('{"schema": 1}')
        path.symlink_to(sibling)
    elif kind == "directory":
        (path / "inside").mkdir(parents=True)
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(200 * 2**20)  # sparse: 200 MiB of zeros that take no disk
    elif kind == "nested":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif kind == "wrong_schema":
        path.write_text(json.dumps({"key": config.key(), "status": "finished", "final": "none", "curve": 3}))
    elif kind == "poisoned_checkpoint":
        torch.save({"model": {}, "optimizer": {}, "schedule": {"last_epoch": 10**18}, "stream": torch.zeros(1),
                    "curve": [{"step": "x"}], "step": 10**18}, path)


PLANTED_KINDS = ("fifo", "link_outside", "link_inside", "directory", "huge", "nested", "wrong_schema",
                 "poisoned_checkpoint")
RUN_PATHS = ("result", "checkpoint", "lock", "failure", "weights")


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """A finished run's config and result, without the weights it names: a copy of the result alone is one of
    no kept model (a run of before weights were kept)."""
    config = smoke_config()
    result, _ = runs.run(config, root=tmp_path_factory.mktemp("clean"), progress=False)
    return config, {k: v for k, v in result.items() if k != "weights"}


@pytest.mark.parametrize("where", RUN_PATHS)
@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_any_file_planted_at_any_run_path_gives_one_warning_at_most_and_a_clean_result(tmp_path, capsys, clean_run,
                                                                                      where, kind):
    config, clean = clean_run
    root = tmp_path / "results"
    outside = tmp_path / "outside.json"
    outside.write_text('{"secret": "outside the results folder"}')
    _, result_file, lock, failed = cache.run_files(config, root)
    path = {"result": result_file, "checkpoint": result_file.with_suffix(".ckpt"), "lock": lock,
            "failure": failed, "weights": result_file.with_suffix(".safetensors")}[where]
    _plant(path, kind, outside, config)
    result, cached = runs.run(config, root=root, progress=False, lock_timeout=5)
    err = capsys.readouterr().err
    assert not cached and result["final"] == clean["final"] and result["curve"] == clean["curve"]
    assert cache.load_result(config, root)["final"] == clean["final"]  # the result on disk is the clean one
    assert outside.read_text() == '{"secret": "outside the results folder"}' and not outside.is_symlink()
    assert "secret" not in json.dumps(result)
    assert err.count("warning:") <= 1 and "Traceback" not in err, err
    assert experiments.load_run(result_file, results_dir=root)[0] == config  # its own weights, kept


def test_a_file_where_the_task_folder_belongs_is_one_line_before_training(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mqar").write_text("")
    argv = ["--task", "mqar", "--results-dir", str(tmp_path / "results"), "--steps", "2", "--warmup-steps", "1",
            "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "experiments.run", *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 2 and "exists and is not a folder" in done.stderr and "task folder" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = subprocess.run([sys.executable, "-m", "experiments.sweep", "mqar_pairs", "--profile", "smoke", "--csv",
                           str(tmp_path / "out.csv"), "--results-dir", str(tmp_path / "results")], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 2 and "exists and is not a folder" in done.stderr and not (tmp_path / "out.csv").exists()


def test_a_read_only_task_folder_is_one_line_before_training(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write into any folder: permissions cannot make one read-only")
    folder = tmp_path / "results" / "mqar"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    with pytest.raises(ConfigError, match="task folder .* is not writable"):
        cache.check_task_folder(smoke_config(), tmp_path / "results")


@pytest.mark.parametrize("plant", ["another_config", "unknown_status"])
def test_a_result_of_another_config_or_with_an_unknown_status_is_set_aside_and_redone(tmp_path, capsys, clean_run,
                                                                                      plant):
    config, clean = clean_run
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=config.train.seed + 1))
    planted = {**clean, "key": other.key(), "config": other.to_dict()} if plant == "another_config" else \
        {**clean, "status": "bogus"}
    path = cache.result_path(config, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(planted))
    assert cache.load_result(config, tmp_path) is None  # not returned as this run's result
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1
    result, cached = runs.run(config, root=tmp_path, progress=False)
    assert not cached and result["final"] == clean["final"] and result["status"] == clean["status"]
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("where", ["result", "lock"])
def test_a_link_to_an_endless_device_at_a_run_path_is_not_read_whole(tmp_path, where):
    # read whole, /dev/zero fills memory until the address-space limit stops the run with a MemoryError
    config = smoke_config()
    _, result, lock, _ = cache.run_files(config, tmp_path)
    path = {"result": result, "lock": lock}[where]
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))\n"
            "from experiments import runs, sweeps\n"
            "config = next(c for c in sweeps.configs('mqar_pairs', 'smoke') if c.task.num_kv_pairs > 1)\n"
            f"result, cached = runs.run(config, root={str(tmp_path)!r}, progress=False, lock_timeout=5)\n"
            "print('status', result['status'], cached)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180,
                          env=subprocess_env())
    assert done.returncode == 0 and "status finished False" in done.stdout, done.stderr[-2000:]
    assert done.stderr.count("warning:") <= 1 and "MemoryError" not in done.stderr


def test_a_task_folder_the_process_cannot_write_is_one_line_and_nothing_trains(tmp_path, monkeypatch, capsys):
    # root may write anywhere, so the folder is made unwritable by the check the run makes (os.access)
    from experiments import run as run_cli

    folder = tmp_path / "results" / "mqar"
    folder.mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == folder
                        else real_access(path, mode, **kw))
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("training started"), raising=False)
    with pytest.raises(SystemExit) as exit_:
        run_cli.main(["--task", "mqar", "--results-dir", str(tmp_path / "results"), "--steps", "2",
                      "--warmup-steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "is not writable" in err and len(err.strip().splitlines()) == 1, err
    assert list(folder.iterdir()) == []


def test_a_result_written_with_the_device_pinned_is_the_same_runs_for_auto(tmp_path, clean_run, capsys):
    # the key resolves auto to the device it trains on; so must the check of the stored config
    config, clean = clean_run
    pinned = config.on(config.device_type())
    assert pinned.key() == config.key() and pinned.to_dict() != config.to_dict()
    path = cache.result_path(config, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**clean, "config": pinned.to_dict()}))
    result, cached = runs.run(config, root=tmp_path, progress=False)
    assert cached and result["final"] == clean["final"]
    assert not list(path.parent.glob("*.corrupt-*")) and "warning" not in capsys.readouterr().err
