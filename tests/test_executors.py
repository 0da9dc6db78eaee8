"""Sweep executors (local processes, submitit's local executor), sweep files, whole-sweep progress.

The submitit tests run every job as a real subprocess through submitit's
local executor: the code path SLURM jobs take, short of ``sbatch``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import subprocess_env

from experiments import cache, executors, progress, runs, sweep, sweeps
from experiments.config import ConfigError
from experiments.executors import LocalExecutor, Lost, SubmititExecutor, make_executor

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(tempfile.mkdtemp(prefix="submitit-jobs-"))  # the default job folder of these tests' sweeps (0700)
ENV = subprocess_env(SUBMITIT_DIR=str(JOBS))
TINY = {"task": {"name": "mqar", "vocab_size": 16, "seq_len": 16, "num_kv_pairs": 2, "num_test_examples": 16},
        "model": {"d_model": 16, "num_heads": 2, "num_layers": 1},
        "train": {"steps": 6, "batch_size": 8, "warmup_steps": 1, "eval_every": 3, "device": "cpu"}}


def write_sweep(path: Path, *, steps: int = 6, seeds=(0, 1), variants=("softmax", "linear"),
                eval_every: int = 3) -> Path:
    base = json.loads(json.dumps(TINY))
    base["train"]["steps"], base["train"]["eval_every"] = steps, eval_every
    path.write_text(json.dumps({"base": base, "grid": {"model.attention.name": list(variants),
                                                       "train.seed": list(seeds)}}))
    return path


def sweep_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.sweep", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def metrics(root: Path) -> dict[str, tuple]:
    """Every result under ``root`` by key: its curve and final metrics without timings."""
    out = {}
    for path in root.rglob("*.json"):
        if path.name.endswith(".failed.json"):
            continue
        result = json.loads(path.read_text())
        final = {k: v for k, v in result["final"].items() if k != "wall_seconds"}
        out[result["key"]] = (result["curve"], final, result["status"])
    return out


# --- sweep files ---------------------------------------------------------------------------------------------


def test_a_sweep_file_crosses_its_grid_over_the_base(tmp_path):
    configs = sweep.file_configs(write_sweep(tmp_path / "s.json"))
    assert [(c.attention_name, c.train.seed) for c in configs] == [
        ("softmax", 0), ("softmax", 1), ("linear", 0), ("linear", 1)]
    assert all(c.task.num_kv_pairs == 2 and c.model.d_model == 16 for c in configs)


def test_sweep_file_runs_are_laid_over_the_base(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"base": TINY, "runs": [{"model": {"attention": {"name": "rela"}}},
                                                       {"task": {"num_kv_pairs": 4}, "train": {"seed": 3}}]}))
    first, second = sweep.file_configs(path)
    assert first.attention_name == "rela_g" and first.task.num_kv_pairs == 2
    assert second.attention_name == "softmax" and second.task.num_kv_pairs == 4 and second.train.seed == 3


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    (json.dumps({"base": TINY, "grids": {}}), "unknown key(s) ['grids']"),
    (json.dumps({"base": TINY, "grid": {"train.seed": []}}), "non-empty list"),
    (json.dumps({"base": TINY, "grid": {"train.seed": 3}}), "non-empty list"),
    (json.dumps({"base": TINY, "runs": []}), "'runs' must be a non-empty list"),
    (json.dumps({"grid": {"train.seed": [0]}}), "needs a task"),
    (json.dumps({"base": TINY, "grid": {"train.sed": [0]}}), "sed"),
    (json.dumps({"base": TINY, "grid": {"model.attention.name": ["softmaxx"]}}), "softmaxx"),
    (json.dumps({"base": TINY, "grid": {"task.num_kv_pairs": [1000]}}), "num_kv_pairs"),
    (json.dumps({"base": TINY, "grid": {"train.steps.x": [1]}}), "not a section"),
    (json.dumps({"base": TINY, "grid": {"train.seed": [0, 0]}}), "same config twice"),
])
def test_bad_sweep_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="sweep file") as error:
        sweep.file_configs(path)
    assert message in str(error.value)


def test_a_bad_sweep_file_exits_2_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"base": TINY, "grid": {"model.attention.name": ["softmax", "nope"]}}))
    done = sweep_cli(str(path), "--csv", str(tmp_path / "out.csv"), "--results-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "nope" in done.stderr and "valid" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "out.csv").exists()
    missing = sweep_cli(str(tmp_path / "missing.json"), "--csv", str(tmp_path / "out.csv"))
    assert missing.returncode == 2 and "cannot be read" in missing.stderr


@pytest.mark.parametrize("flags, message", [
    (["--executor", "pbs"], "invalid choice"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--time-min", "0"], "--time-min must be at least 1"),
    (["--gpus-per-job", "-1"], "--gpus-per-job must be at least 0"),
    (["--partition", "gpu"], "--partition applies to --executor slurm only"),
    (["--profile", "quick"], "--profile applies to sweep modules"),
])
def test_bad_executor_flags_exit_2(tmp_path, flags, message):
    path = write_sweep(tmp_path / "s.json")
    done = sweep_cli(str(path), "--csv", str(tmp_path / "out.csv"), "--results-dir", str(tmp_path / "r"), *flags)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "r").exists()


# --- executors -----------------------------------------------------------------------------------------------


def _square(x: int) -> int:
    return x * x


def test_executors_share_one_interface_and_report_every_call():
    local = LocalExecutor(2, gpus=0)
    assert sorted(local.map(_square, [(i,) for i in range(5)])) == [(i, i * i) for i in range(5)]
    with pytest.raises(ValueError, match="valid executors are"):
        make_executor("pbs", workers=1, folder=".")


def _die_first(index: int, marker: str) -> tuple[int, str]:
    """Call 0 kills its worker the first time; every call returns the GPU its worker was given."""
    if index == 0 and not os.path.exists(marker):
        Path(marker).touch()
        time.sleep(0.5)  # as a run would: the worker has said which call it started before it dies
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return index, os.environ["CUDA_VISIBLE_DEVICES"]


def _gpu_pool_after_a_death(marker: str) -> None:
    outcomes = dict(LocalExecutor(2, gpus=2).map(_die_first, [(i, marker) for i in range(4)]))
    print(json.dumps({str(i): o.reason if isinstance(o, Lost) else o for i, o in outcomes.items()}))


def test_a_gpu_pool_rebuilt_after_a_worker_died_gives_its_workers_devices(tmp_path):
    # each pool's workers take one GPU id each at start-up; a rebuilt pool whose queue was already empty
    # would wait forever for one (in a subprocess, so that a hang fails the test instead of the session)
    code = f"import test_executors as t; t._gpu_pool_after_a_death({str(tmp_path / 'died')!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**ENV, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])})
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert "worker died: signal 9" in outcomes.pop("0")
    assert sorted(outcomes) == ["1", "2", "3"]
    assert {device for _, device in outcomes.values()} <= {"0", "1"}


@pytest.fixture
def importable_tests(monkeypatch):
    """Jobs unpickle this module's functions by name: let their interpreter find it."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))


def test_the_submitit_local_executor_runs_jobs_as_subprocesses_at_most_workers_at_once(tmp_path, importable_tests):
    executor = SubmititExecutor("local", tmp_path / "jobs", workers=2, poll_seconds=0.2)
    got = dict(executor.map(_pid_after, [(0.5,)] * 4))
    pids = {pid for pid, _ in got.values()}
    assert len(got) == 4 and os.getpid() not in pids and len(pids) == 4  # a fresh process per job
    spans = sorted(span for _, span in got.values())
    overlapping = max(sum(start < s_end and s_start < end for s_start, s_end in spans) for start, end in spans)
    assert overlapping <= 2


def _pid_after(seconds: float) -> tuple[int, tuple[float, float]]:
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), (start, time.time())


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_job_killed_by_a_signal_is_reported_lost_not_raised(tmp_path, importable_tests):
    executor = SubmititExecutor("local", tmp_path / "jobs", workers=1, poll_seconds=0.2)
    ((index, outcome),) = list(executor.map(_die, [()]))
    assert index == 0 and isinstance(outcome, Lost) and "UncompletedJobError" in outcome.reason, outcome


def test_a_sweep_across_submitit_jobs_equals_the_same_sweep_in_local_processes(tmp_path):
    path = write_sweep(tmp_path / "s.json")
    jobs = sweep_cli(str(path), "--executor", "submitit-local", "--workers", "2", "--csv", str(tmp_path / "a.csv"),
                     "--results-dir", str(tmp_path / "a"))
    assert jobs.returncode == 0, jobs.stderr
    local = sweep_cli(str(path), "--workers", "2", "--csv", str(tmp_path / "b.csv"),
                      "--results-dir", str(tmp_path / "b"))
    assert local.returncode == 0, local.stderr
    assert len(metrics(tmp_path / "a")) == 4 and metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert list((JOBS / "s").iterdir()), "submitit wrote no job files"
    assert not list((tmp_path / "a").rglob("*.pkl")), "job files in the results folder"
    assert "[4/4 done, 0 running, 0 failed, ETA 0s]" in jobs.stderr


def test_a_job_folder_others_could_write_to_is_refused_before_any_job(tmp_path):
    # submitit unpickles <job>_result.pkl from the job folder: a file planted there would run in the sweep
    path = write_sweep(tmp_path / "s.json")
    inside = sweep_cli(str(path), "--executor", "submitit-local", "--csv", str(tmp_path / "a.csv"),
                       "--results-dir", str(tmp_path / "r"), "--submitit-dir", str(tmp_path / "r" / "jobs"))
    assert inside.returncode == 2 and "inside the results folder" in inside.stderr
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    open_folder = sweep_cli(str(path), "--executor", "submitit-local", "--csv", str(tmp_path / "a.csv"),
                            "--results-dir", str(tmp_path / "r"), "--submitit-dir", str(shared))
    assert open_folder.returncode == 2 and "is not yours alone" in open_folder.stderr and "mode 777" in \
        open_folder.stderr
    for done in (inside, open_folder):
        assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr  # usage + the line
    assert not list((tmp_path / "r").rglob("*.json")) and not (tmp_path / "a.csv").exists()
    made = executors.private_job_folder(tmp_path / "new" / "jobs", tmp_path / "r")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_a_submitit_worker_killed_mid_run_leaves_nothing_and_a_rerun_matches_an_uninterrupted_sweep(tmp_path):
    path = write_sweep(tmp_path / "s.json", steps=300, seeds=(0,), eval_every=50)
    argv = [sys.executable, "-m", "experiments.sweep", str(path), "--executor", "submitit-local", "--workers", "1",
            "--csv", str(tmp_path / "a.csv"), "--results-dir", str(tmp_path / "a")]
    driver = subprocess.Popen(argv, cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline, lock = time.time() + 120, None
    while (lock is None or not lock.with_suffix(".ckpt").exists()) and time.time() < deadline:
        lock = next((p for p in (tmp_path / "a").rglob("*.lock")), None)
        time.sleep(0.05)  # until a run holds its lock and has written its first checkpoint: 250 steps to go
    assert lock is not None and lock.with_suffix(".ckpt").exists(), "no run started"
    host, pid = lock.read_text().split()
    os.kill(int(pid), signal.SIGKILL)  # the job's process, in the middle of its run
    log = driver.communicate(timeout=300)[1]
    assert driver.returncode == 1 and "lost their worker" in log, log
    killed = lock.with_suffix(".json")
    assert not killed.exists(), "the killed run left a result file"
    assert not (tmp_path / "a.csv").exists()
    rerun = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 of 2 runs cached" in rerun.stderr  # the run that finished is not redone
    clean = sweep_cli(str(path), "--workers", "1", "--csv", str(tmp_path / "b.csv"), "--results-dir", str(tmp_path / "b"))
    assert clean.returncode == 0, clean.stderr
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b") and len(metrics(tmp_path / "b")) == 2
    assert not list((tmp_path / "a").rglob("*.lock"))


# --- progress and locks across hosts --------------------------------------------------------------------------


def test_progress_counts_done_running_failed_and_estimates_the_rest(tmp_path, live_pid):
    configs = sweep.file_configs(write_sweep(tmp_path / "s.json", seeds=(0, 1, 2)))  # 6 runs
    now = [0.0]
    tracker = progress.Progress(configs, str(tmp_path), clock=lambda: now[0])
    assert tracker.line() == "[0/6 done, 0 running, 0 failed, ETA ?]"
    for config in configs[:2]:
        runs.run(config, root=tmp_path, progress=False)
    cache.record_failure(configs[2], ValueError("boom"), tmp_path)
    held = cache.result_path(configs[3], tmp_path).with_suffix(".lock")
    held.write_text(f"{__import__('platform').node()} {live_pid}")  # a live holder: another process
    tracker.lost.add(configs[4].key())
    now[0] = 60.0  # two runs in 60 s, one left (besides the failed and lost) -> 30 s
    assert tracker.line() == "[2/6 done, 1 running, 2 failed, ETA 1m00s]"
    assert progress._duration(3725) == "1h02m" and progress._duration(59.6) == "1m00s"


def test_a_lock_from_another_host_is_stale_once_its_heartbeat_stops(tmp_path):
    config = sweep.file_configs(write_sweep(tmp_path / "s.json"))[0]
    lock = cache.result_path(config, tmp_path).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text("some-other-node 12345")
    with pytest.raises(cache.Locked):  # fresh: its holder is presumed alive
        runs.run(config, root=tmp_path, progress=False, wait=False)
    old = time.time() - cache.STALE_AFTER_SECONDS - 1
    os.utime(lock, (old, old))
    result, cached = runs.run(config, root=tmp_path, progress=False, wait=False)
    assert not cached and result["key"] == config.key() and not lock.exists()


def test_a_running_run_keeps_its_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "HEARTBEAT_SECONDS", 0.05)
    lock = tmp_path / "x.lock"
    lock.write_text("host 1")
    old = time.time() - 1000
    os.utime(lock, (old, old))
    beat = cache.Heartbeat(lock)
    beat.start()
    time.sleep(0.3)
    beat.stopped.set()
    beat.join()
    assert time.time() - lock.stat().st_mtime < 1


def test_a_gpu_sweep_sent_elsewhere_gets_the_key_its_jobs_will_write():
    config = sweeps.configs("mqar_width", "smoke")[0]
    assert config.train.device == "auto"
    assert config.on("cuda").key() != config.on("cpu").key()
    assert config.key() == config.on(config.device_type()).key()  # 'auto' shares the resolved device's key


def test_slurm_flags_become_the_array_jobs_sbatch_directives(tmp_path, monkeypatch):
    """Up to the scheduler: a fake sbatch records the script submitit hands it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path}/submitted.sh\necho 'Submitted batch job 4242'\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = make_executor("slurm", workers=3, folder=tmp_path / "jobs", partition="gpu", time_min=120,
                             gpus_per_job=1, cpus_per_job=8)
    assert executor.device == "cuda"
    jobs = executor.submit_array(_square, [(i,) for i in range(5)])
    script = (tmp_path / "submitted.sh").read_text()
    for directive in ("--partition=gpu", "--array=0-4%3", "--gpus-per-node=1", "--cpus-per-task=8", "--time=120"):
        assert f"#SBATCH {directive}\n" in script, script
    assert [job.job_id for job in jobs] == [f"4242_{i}" for i in range(5)]


def test_slurm_without_slurm_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun here
    with pytest.raises(RuntimeError, match="needs SLURM's srun"):
        make_executor("slurm", workers=1, folder=tmp_path / "jobs")


def test_a_truncated_result_is_redone_by_a_submitit_sweep(tmp_path):
    path = write_sweep(tmp_path / "s.json", seeds=(0,))
    argv = [str(path), "--executor", "submitit-local", "--workers", "2", "--csv", str(tmp_path / "a.csv"),
            "--results-dir", str(tmp_path / "a")]
    assert sweep_cli(*argv).returncode == 0
    before = metrics(tmp_path / "a")
    victim = cache.result_path(sweep.file_configs(path)[0], tmp_path / "a")
    victim.write_text(victim.read_text()[:200])  # cut short, as a crash outside the atomic write would
    again = sweep_cli(*argv)
    assert again.returncode == 0, again.stderr
    assert "corrupt" in again.stderr and "1 of 2 runs cached" in again.stderr
    assert metrics(tmp_path / "a") == before


def test_two_concurrent_submitit_runners_do_each_run_once(tmp_path):
    path = write_sweep(tmp_path / "s.json", steps=200, seeds=(0, 1), eval_every=50)
    drivers = [subprocess.Popen([sys.executable, "-m", "experiments.sweep", str(path), "--executor", "submitit-local",
                                 "--workers", "2", "--csv", str(tmp_path / f"{name}.csv"),
                                 "--results-dir", str(tmp_path / "r"), "--submitit-dir", str(tmp_path / name)],
                                cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    logs = [d.communicate(timeout=300)[1] for d in drivers]
    assert all(d.returncode == 0 for d in drivers), logs
    trained = [{line.split("] run ")[1].split()[0] for line in log.splitlines() if "] run " in line} for log in logs]
    assert not trained[0] & trained[1], "a run was trained by both runners"
    assert trained[0] | trained[1] == {c.run_id() for c in sweep.file_configs(path)}
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
