"""Fuzzed user input: command lines built from the real flags and sweep files, with extreme and wrong values.

Every command line must end with exit status 0 or 2 under ``--dry-run`` (in
under 5 s, nothing allocated), and 0, 1 (a recorded failure) or 2 when a
sample of them trains for two steps, one line on stderr when refused or
failed, never a traceback, none past 60 s;
every sweep file must give configs or one ConfigError. The counts are
asserted, so the test cannot pass by trying nothing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synthetic
from experiments import attention, run, sweep
from experiments.config import ConfigError

VALUES = st.one_of(
    st.integers(min_value=-5, max_value=300).map(str),
    st.sampled_from(["0", "-1", "1e20", "99999999999", "1e-300", "inf", "-inf", "nan", "", "x", "true", "1.5",
                     "3e-3", "2", "64", "none", "None", "blank", "shift", "conv", "cpu", "cuda"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
SEEN = collections.Counter()


SKIPPED = ("--help", "--dry-run", "--force", "--json", "--results-dir", "--no-progress")


def flags_of(task: str, variant: str) -> dict[str, argparse.Action]:
    parser, _ = run.build_parser(task, variant)
    return {option: action for action in parser._actions for option in action.option_strings
            if option.startswith("--") and option not in SKIPPED}


def plausible(action: argparse.Action) -> st.SearchStrategy[str]:
    """A value of the flag's own kind (valid or near it), so that lines get past parsing and into the configs."""
    if action.choices:
        return st.sampled_from(sorted(map(str, action.choices)))
    if action.type is int:
        return st.sampled_from(["1", "2", "3", "4", "8", "16", "32", "64"])
    return st.sampled_from(["0", "1e-3", "3e-3", "0.1", "0.5", "1", "2"])


@st.composite
def command_lines(draw, leave_out: tuple[str, ...] = ()):
    task = draw(st.sampled_from(synthetic.names() + ["nope"]))
    variant = draw(st.sampled_from(attention.names() + ["nope"]))
    flags = flags_of(task if task != "nope" else "mqar", variant if variant != "nope" else "softmax")
    argv = ["--task", task, "--attention", variant]
    for flag in draw(st.lists(st.sampled_from(sorted(set(flags) - set(leave_out))), max_size=5)):
        if flags[flag].nargs == 0:
            argv.append(flag)
        else:  # a value (wild one time in four, else of the flag's kind) joined by '=', so '-1' is a value
            argv.append(f"{flag}={draw(VALUES if draw(st.integers(0, 3)) == 3 else plausible(flags[flag]))}")
    return argv


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(argv=command_lines())
def test_fuzzed_command_lines_exit_0_or_2_with_one_line(argv, tmp_path_factory):
    err = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run.main([*argv, "--dry-run", "--results-dir", str(tmp_path_factory.getbasetemp() / "r")])
        except SystemExit as exit_:
            code = exit_.code
    SEEN["lines"] += 1
    assert code in (0, 2), (argv, code, err.getvalue())
    assert time.monotonic() - started < 5, argv  # a dry run allocates nothing
    if code == 2:
        SEEN["refused"] += 1
        last = err.getvalue().strip().splitlines()[-1]
        assert "error:" in last and "Traceback" not in err.getvalue(), (argv, err.getvalue())


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(argv=command_lines(leave_out=("--compile",)))  # compiling takes tens of seconds a run; parsed above
def test_fuzzed_command_lines_run_for_real_end_in_a_result_or_one_line(argv, tmp_path_factory):
    """The same command lines, trained for real (two steps, no warm-up, 32 test examples: the sample stays short): a result (0), a
    recorded failure (1) or a refusal (2), never a traceback, none past 60 s."""
    err = io.StringIO()
    root = tmp_path_factory.mktemp("real")
    started = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run.main([*argv, "--steps", "2", "--warmup-steps", "0", "--num-test-examples", "32", "--no-progress", "--results-dir", str(root)])
        except SystemExit as exit_:
            code = exit_.code
    SEEN["real"] += 1
    assert code in (0, 1, 2), (argv, code, err.getvalue())
    assert time.monotonic() - started < 60, argv
    assert "Traceback" not in err.getvalue(), (argv, err.getvalue())
    if code:
        SEEN[f"real {code}"] += 1
        assert len(err.getvalue().strip().splitlines()) == 1 and "error:" in err.getvalue(), (argv, err.getvalue())
    else:
        assert list(root.rglob("*.json")), "a finished run leaves its result"


PLAUSIBLE = {  # each field's own kind of value, so that files get past type checks and into the configs
    "train.steps": [1, 3, 50], "train.lr": [1e-3, 3e-3, 0.1], "train.seed": [0, 1, 2], "train.batch_size": [4, 16],
    "model.d_model": [16, 32], "model.num_heads": [1, 2, 4], "model.attention.name": ["softmax", "linear", "rela"],
    "task.num_kv_pairs": [1, 2, 4], "task.seq_len": [16, 32], "task.vocab_size": [16, 32],
    "task.power_a": [0.01, 0.1], "model.token_mixing": ["none", "shift", "conv"],
}
JSON_VALUES = st.one_of(st.integers(min_value=-3, max_value=2**40), st.floats(allow_nan=False), st.booleans(),
                        st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2),
                        st.sampled_from(["softmax", "linear", "shift", 64, 4, 3e-3]))


@st.composite
def grids(draw):
    """A sweep file's grid: fields crossed with values, wild one time in four, else of the field's kind."""
    grid = {}
    for field in draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=3, unique=True)):
        if draw(st.integers(0, 3)) == 3:  # (hypothesis favours 0: the common case there)
            grid[field] = draw(st.lists(JSON_VALUES, max_size=3))
        else:
            grid[field] = draw(st.lists(st.sampled_from(PLAUSIBLE[field]), min_size=1, max_size=3, unique=True))
    if draw(st.integers(0, 7)) == 7:
        grid[draw(st.sampled_from(["bogus", "train.bogus", "task", "model.attention"]))] = [1]
    return grid


VALID_TASK = {"name": "mqar", "seq_len": 16, "vocab_size": 16, "num_kv_pairs": 2}


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(grid=grids(), base_task=st.sampled_from([VALID_TASK, VALID_TASK, VALID_TASK,
                                                {"name": "nope"}, {}, {"name": "mqar", "steps": 3}]))
def test_fuzzed_sweep_files_give_configs_or_one_config_error(grid, base_task, tmp_path_factory):
    path = tmp_path_factory.mktemp("sweeps") / "s.json"
    path.write_text(json.dumps({"base": {"task": base_task}, "grid": grid}))
    SEEN["sweep files"] += 1
    try:
        configs = sweep.file_configs(path)
    except ConfigError as error:
        SEEN["sweep refused"] += 1
        assert "\n" not in str(error)
        return
    assert configs and all(c.train.steps >= 1 for c in configs)
    SEEN["sweep configs"] += len(configs)


def test_the_fuzzing_tried_what_it_says():
    if SEEN["lines"] == 0:
        pytest.skip("run with the fuzz tests above (they fill the counts)")
    assert SEEN["lines"] >= 500 and SEEN["sweep files"] >= 200
    assert 0 < SEEN["refused"] < SEEN["lines"] and 0 < SEEN["sweep refused"] < SEEN["sweep files"]
    print(dict(SEEN))
    assert SEEN["sweep files"] - SEEN["sweep refused"] >= 50  # a fair share of the files were valid
    assert SEEN["real"] >= 40 and 0 < SEEN["real 2"] < SEEN["real"]  # some trained, some were refused


@pytest.mark.parametrize("content, problem", [
    (b'{"base": {"task": {"name": "mqar"}}, "grid": {"train.seed": [0, 1]}, "grid": {"train.seed": [2]}}',
     "given twice"),
    (b'{"base": {"task": {"name": "mqar\xff"}}}', "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b'{"base": {"task": {"name": "mqar", "seq_len": ' + b"9" * 5000 + b"}}}", "not valid JSON"),
    (b'{"base": {"task": {"name": "mqar", "seq_len": [' + b"0," * 1_000_000 + b"0]}}}", "characters in all"),
])
def test_a_bad_sweep_file_is_one_short_line(tmp_path, content, problem):
    path = tmp_path / "sweep.json"
    path.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "experiments.sweep", str(path), "--list"], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and problem in lines[0], done.stderr[-2000:]
    assert len(lines[0]) < 1000 and "Traceback" not in done.stderr


def test_a_csv_path_that_is_a_folder_is_refused_before_any_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "experiments.sweep", "mqar_pairs", "--profile", "smoke", "--csv",
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "is a folder" in done.stderr and "Traceback" not in done.stderr
