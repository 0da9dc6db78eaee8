"""The command line: bad input exits 2 and writes nothing; a rerun is a cache hit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import subprocess_env

import synthetic
from experiments import attention, run as cli, runs
from experiments.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--task", "mqar", "--vocab-size", "16", "--seq-len", "16", "--num-kv-pairs", "2", "--d-model", "16",
        "--num-heads", "2", "--steps", "4", "--warmup-steps", "1", "--eval-every", "2", "--batch-size", "4", "--num-test-examples", "16",
        "--no-progress"]


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("argv,message", [
    (["--attention", "bogus"], "invalid choice: 'bogus' (choose from 'entmax15', 'inline', 'linear'"),
    (["--task", "nope"], "invalid choice: 'nope' (choose from 'alignment', 'ar', 'copying'"),
    (["--num-kv-pairs", "40", "--seq-len", "64"], "seq_len >= 4*num_kv_pairs = 160"),
    (["--vocab-size", "10", "--num-kv-pairs", "8"], "distinct keys need vocab_size >= 18"),
    (["--d-model", "10", "--num-heads", "3"], "divisible by num_heads"),
    (["--attention", "linear", "--form", "blocked"], "invalid choice: 'blocked'"),
    (["--attention", "softmax", "--form", "recurrent"], "unrecognized arguments: --form"),
    (["--steps", "0"], "steps must be positive"),
    (["train.steps=five"], "train.steps must be int, got str 'five'"),
    (["model.attention.name=nope"], "unknown attention 'nope'; valid names are ['entmax15'"),
    (["train.bogus=1"], "train: unknown key(s) ['bogus']"),
    (["steps"], "'steps' is not FIELD=VALUE"),
    (["task.name.deep=1"], "goes through 'name', which is not a section"),
], ids=["attention", "task", "pairs-vs-length", "vocab", "heads", "choice", "foreign-flag", "steps", "dotted-type",
        "dotted-name", "dotted-unknown", "not-dotted", "dotted-through-a-value"])
def test_bad_input_exits_2_and_writes_nothing(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--results-dir", str(tmp_path / "results")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not files_under(tmp_path / "results")


def test_dotted_overrides_give_the_config_the_flags_give_and_win_over_them():
    _, by_flags = cli.parse(["--task", "ar", "--attention", "rela", "--num-kv-pairs", "3", "--d-model", "48",
                             "--lr", "0.01", "--no-mlp"])
    _, by_fields = cli.parse(["task.name=ar", "model.attention.name=rela", "task.num_kv_pairs=3",
                              "model.d_model=48", "train.lr=0.01", "model.mlp=false"])
    assert by_fields == by_flags and by_fields.key() == by_flags.key()
    _, mixed = cli.parse(["--task", "ar", "--num-kv-pairs", "2", "task.num_kv_pairs=5"])
    assert mixed.task.num_kv_pairs == 5


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_is_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(TINY + ["--device", "cuda", "--results-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert files_under(tmp_path) == []


def test_bad_input_from_a_real_shell(tmp_path):
    env = subprocess_env(RESULTS_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "experiments.run", "--attention", "bogus"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    for name in attention.names():
        assert name in out.stderr
    assert files_under(tmp_path) == []


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--attention", "rela", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ["--vocab-size", "--num-kv-pairs", "--power-a", "--gain-init", "--eps", "--d-model",
                 "--num-layers", "--mlp", "--steps", "--lr", "--target-accuracy", "--seed", "--device"]:
        assert flag in text
    assert "--form" in text  # the other variants' options are listed in the epilog


def test_issue_example_parses_into_the_right_config(capsys, tmp_path):
    cli.main(["--task", "mqar", "--attention", "rela", "--seq-len", "128", "--num-kv-pairs", "16",
              "--d-model", "64", "--seed", "0", "--dry-run", "--results-dir", str(tmp_path)])
    shown = json.loads(capsys.readouterr().out)
    config = shown["config"]
    assert config["task"]["seq_len"] == 128 and config["task"]["num_kv_pairs"] == 16
    assert config["model"]["d_model"] == 64 and config["model"]["attention"]["name"] == "rela_g"
    assert config["train"]["seed"] == 0
    assert files_under(tmp_path) == []


def test_run_writes_one_result_and_rerun_is_a_cache_hit(tmp_path, capsys, monkeypatch):
    argv = TINY + ["--attention", "linear", "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    first_out = capsys.readouterr().out
    written = files_under(tmp_path)
    assert len(written) == 1 and written[0].suffix == ".json"
    result = json.loads(written[0].read_text())
    for field in ["config", "curve", "final", "status", "wall_seconds", "device", "versions", "git", "key", "run_id"]:
        assert field in result
    assert result["config"]["model"]["attention"]["name"] == "linear"
    assert result["status"] in {"finished", "reached_target"}
    assert "(cached)" not in first_out and "status" in first_out

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached config was trained again")

    monkeypatch.setattr(runs, "train", must_not_train)
    mtime = written[0].stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert "(cached)" in capsys.readouterr().out
    assert written[0].stat().st_mtime_ns == mtime
    assert files_under(tmp_path) == written


def test_config_round_trips_through_the_result(tmp_path):
    args, config = cli.parse(TINY + ["--attention", "rela_i", "--gain-init", "ones", "--results-dir", str(tmp_path)])
    assert config.model.attention.gain_init == "ones"
    assert runs.RunConfig.from_dict(config.to_dict()) == config
    assert runs.RunConfig.from_dict(config.to_dict()).key() == config.key()
    with pytest.raises(ConfigError, match="unknown key"):
        runs.RunConfig.from_dict({**config.to_dict(), "extra": 1})


@pytest.mark.parametrize("task", __import__("synthetic").names())
def test_every_task_runs_from_the_command_line(task, tmp_path, capsys):
    argv = ["--task", task, "--attention", "rela_g", "--d-model", "16", "--num-heads", "2", "--steps", "2",
            "--warmup-steps", "1", "--eval-every", "1", "--batch-size", "4", "--num-test-examples", "8",
            "--no-progress", "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    result = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert result["config"]["task"]["name"] == task and result["steps_run"] == 2
    assert "test_exact_match" in result["final"]


def test_help_lists_every_task_and_variant_with_its_summary(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for kind, registry in (("task", synthetic), ("attention", attention)):
        for name in registry.names():
            assert f"--{kind} {name}: {registry.get(name).summary}" in out, name
