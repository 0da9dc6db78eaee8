"""The command line: bad input exits 2 and writes nothing; a rerun is a cache hit."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import subprocess_env

import synthetic
from experiments import attention, run as cli, runs
from experiments.config import ConfigError
from experiments.model import ModelConfig
from experiments.sweeps import _common
from experiments.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--task", "mqar", "--vocab-size", "16", "--seq-len", "16", "--num-kv-pairs", "2", "--d-model", "16",
        "--num-heads", "2", "--steps", "4", "--warmup-steps", "1", "--eval-every", "2", "--batch-size", "4", "--num-test-examples", "16",
        "--no-progress"]


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("argv,message", [
    (["--attention", "bogus"], "invalid choice: 'bogus' (choose from 'entmax15', 'inline', 'linear'"),
    (["--task", "nope"], "invalid choice: 'nope' (choose from 'alignment', 'ar', 'bigram_backcopy', 'copying'"),
    (["--num-kv-pairs", "40", "--seq-len", "64", "--vocab-size", "256"], "seq_len >= 4*num_kv_pairs = 160"),
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
    (["--recipe", "bogus"], "invalid choice: 'bogus' (choose from 'none', 'recall')"),
    (["--task", "ar", "--recipe", "recall"], "recipe 'recall' was measured on task 'mqar', not 'ar'"),
], ids=["attention", "task", "pairs-vs-length", "vocab", "heads", "choice", "foreign-flag", "steps", "dotted-type",
        "dotted-name", "dotted-unknown", "not-dotted", "dotted-through-a-value", "recipe", "recipe-of-another-task"])
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
    assert sorted(p.suffix for p in written) == [".json", ".safetensors"]  # the result and its kept weights
    result = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    for field in ["config", "curve", "final", "status", "wall_seconds", "device", "versions", "git", "key", "run_id"]:
        assert field in result
    assert result["config"]["model"]["attention"]["name"] == "linear"
    assert result["status"] in {"finished", "reached_target"}
    assert "(cached)" not in first_out and "status" in first_out
    chance = synthetic.chance(runs.RunConfig.from_dict(result["config"]).task)  # 1/2: two pairs
    assert first_out.strip().splitlines()[-1] == (
        f"accuracy {result['final']['test_accuracy']:.4f} (chance {chance:.4f}; learned at >= 0.7500: "
        + ("learned)" if result["final"]["test_accuracy"] >= 0.75 else "did not learn)"))

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached config was trained again")

    monkeypatch.setattr(runs, "train", must_not_train)
    mtime = written[0].stat().st_mtime_ns
    assert cli.main(argv) == 0
    cached_out = capsys.readouterr().out.strip().splitlines()
    assert "(cached)" in cached_out[-2] and cached_out[-1] == first_out.strip().splitlines()[-1]
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


def recall_recipe(name: str) -> runs.RunConfig:
    """The recall recipe for a variant as the sweeps build it (the lr_search sweep's quick setting)."""
    return _common.make_config(("mqar", _common.RECALL_TASK), name, seed=0, train=_common.RECALL_TRAIN,
                               **_common.RECALL_MODEL)


def test_a_bare_mqar_run_is_the_recall_recipe_of_its_variant():
    for name in attention.names(include_aliases=True):
        _, config = cli.parse(["--task", "mqar", "--attention", name])
        assert config == recall_recipe(attention.get(name).name), name
        assert config.model.token_mixing == "shift" and config.model.num_heads == 2, name
    _, bare = cli.parse([])
    assert bare == recall_recipe("softmax")
    with open(_common.LR_TABLE, newline="") as handle:  # a bare run is one run of the committed search
        searched = {(r["model.attention.name"], float(r["train.lr"])): r["key"] for r in csv.DictReader(handle)}
    assert bare.key() == searched[("softmax", bare.train.lr)]


def test_an_explicit_flag_or_field_wins_over_the_recipe():
    _, config = cli.parse(["--d-model", "64", "--token-mixing", "conv", "--steps", "300", "--vocab-size", "128",
                           "train.lr=0.01", "model.num_heads=4"])
    assert (config.model.d_model, config.model.token_mixing, config.model.num_heads) == (64, "conv", 4)
    assert (config.train.steps, config.train.lr, config.task.vocab_size) == (300, 0.01, 128)
    recipe = recall_recipe("softmax")  # every field not given keeps the recipe's value
    assert config.task.filler == recipe.task.filler == "blank" and config.train.target_accuracy == 0.95
    assert config.train.eval_every == recipe.train.eval_every != TrainConfig().eval_every


def test_the_old_defaults_are_reachable_by_a_flag_and_by_the_fields():
    plain = runs.RunConfig(task=synthetic.make_config("mqar"), model=ModelConfig(), train=TrainConfig())
    _, by_flag = cli.parse(["--task", "mqar", "--recipe", "none"])
    old = ["--vocab-size", "256", "--filler", "random", "--num-test-examples", "1000", "--d-model", "64",
           "--num-heads", "1", "--token-mixing", "none", "--steps", "2000", "--eval-every", "100",
           "--target-accuracy", "0.99"]
    _, by_fields = cli.parse(["--task", "mqar", *old])
    assert by_flag == by_fields == plain and by_flag.key() == plain.key()
    assert by_flag != recall_recipe("softmax")
    for task in synthetic.names():  # only MQAR has a recipe: every other task starts from its own defaults
        if task != "mqar":
            _, config = cli.parse(["--task", task])
            assert config == runs.RunConfig(task=synthetic.make_config(task), model=ModelConfig(),
                                            train=TrainConfig()), task


def test_help_titles_each_group_by_its_dotted_prefix_and_lists_the_aliases(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--attention", "rela", "--help"])
    text = capsys.readouterr().out
    titles = [line for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    for prefix, what in (("task.", "mqar"), ("model.attention.", "rela_g"), ("model.", ""), ("train.", "")):
        assert f"{prefix}* ({what}):" in titles or not what and f"{prefix}*:" in titles, (prefix, titles)
        assert f"as {prefix}FIELD=VALUE" in text
    assert "--steps VALUE is train.steps=VALUE" in text
    words = " ".join(text.split())
    assert attention.aliases() and all(f"{alias} = {name}" in words for alias, name in attention.aliases().items())
    assert "rela_g: ReLA-g" in words and "(also --attention rela)" in words
    assert "--recipe NAME start from a recipe's settings" in words and "Default here: recall" in words
    assert "(default: 32, the recall recipe's; 64 with --recipe none)" in words  # --d-model
    assert "(default: 2)" in words  # --num-layers: the recipe leaves it at its default


def test_help_of_a_task_without_a_recipe_shows_the_plain_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--task", "ar", "--help"])
    words = " ".join(capsys.readouterr().out.split())
    assert "Default here: none" in words and "the recall recipe's" not in words
    assert "residual stream width (default: 64)" in words


def test_the_summary_ends_with_accuracy_against_chance(tmp_path):
    config = recall_recipe("softmax")
    result = {"run_id": config.run_id(), "status": "finished", "steps_run": 1200, "config": config.to_dict(),
              "final": {"test_accuracy": 0.2, "test_loss": 2.0}, "wall_seconds": 3.0, "device_name": "cpu"}
    lines = runs.describe(result, saved_at="results/mqar/x.json").splitlines()
    assert lines[-2] == "result   results/mqar/x.json"
    assert lines[-1] == "accuracy 0.2000 (chance 0.1250; learned at >= 0.5625: did not learn)"
    diverged = {**result, "status": "diverged", "diverged_at_step": 40,
                "final": {"last_finite": {"step": 30, "test_accuracy": 0.9}}}
    assert runs.describe(diverged).splitlines()[-1] == (
        "accuracy 0.9000 at step 30, the last finite evaluation (chance 0.1250; learned at >= 0.5625: "
        "did not learn)")


def test_the_bare_run_learns(tmp_path, capsys):
    """The bare command line trains past the learned threshold (softmax reaches the target in ~250 steps, ~7 s)."""
    assert cli.main(["--task", "mqar", "--attention", "softmax", "--no-progress", "--results-dir", str(tmp_path)]) == 0
    result = json.loads(next(tmp_path.rglob("*.json")).read_text())
    config = runs.RunConfig.from_dict(result["config"])
    assert config == recall_recipe("softmax")
    assert result["status"] == "reached_target" and result["final"]["test_accuracy"] >= 0.95
    assert result["final"]["test_accuracy"] > synthetic.learned_threshold(config.task) > synthetic.chance(config.task)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"accuracy {result['final']['test_accuracy']:.4f} (chance 0.1250;") and "learned)" in last
