"""Fuzzed user input: command lines built from the real flags and sweep files, with extreme and wrong values.

Every command line (always ``--dry-run``, so nothing trains) must end with
exit status 0 or 2, one line on stderr when refused, and no other exception;
every sweep file must give configs or one ConfigError. The counts are
asserted, so the test cannot pass by trying nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import time

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
SEEN = {"lines": 0, "refused": 0, "sweep files": 0, "sweep refused": 0}


def flags_of(task: str, variant: str) -> list[str]:
    parser, _ = run.build_parser(task, variant)
    return sorted({option for action in parser._actions for option in action.option_strings
                   if option.startswith("--") and option not in ("--help", "--dry-run", "--force", "--json",
                                                                  "--results-dir", "--no-progress")})


@st.composite
def command_lines(draw):
    task = draw(st.sampled_from(synthetic.names() + ["nope"]))
    variant = draw(st.sampled_from(attention.names() + ["nope"]))
    flags = flags_of(task if task != "nope" else "mqar", variant if variant != "nope" else "softmax")
    argv = ["--task", task, "--attention", variant]
    for flag in draw(st.lists(st.sampled_from(flags), max_size=5)):
        argv.append(flag)
        if not flag.startswith("--no-") and flag not in ("--mlp", "--tie-embeddings", "--filler-may-collide"):
            argv.append(draw(VALUES))
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


FIELDS = st.sampled_from(["train.steps", "train.lr", "train.seed", "train.batch_size", "model.d_model",
                          "model.num_heads", "model.attention.name", "task.num_kv_pairs", "task.seq_len",
                          "task.vocab_size", "task.power_a", "model.token_mixing", "train.bogus", "bogus"])
JSON_VALUES = st.one_of(st.integers(min_value=-3, max_value=2**40), st.floats(allow_nan=False), st.booleans(),
                        st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2),
                        st.sampled_from(["softmax", "linear", "shift", 64, 4, 3e-3]))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(grid=st.dictionaries(FIELDS, st.lists(JSON_VALUES, max_size=3), max_size=3),
       base_task=st.sampled_from([{"name": "mqar", "seq_len": 16, "vocab_size": 16, "num_kv_pairs": 2},
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


def test_the_fuzzing_tried_what_it_says():
    if SEEN["lines"] == 0:
        pytest.skip("run with the fuzz tests above (they fill the counts)")
    assert SEEN["lines"] >= 500 and SEEN["sweep files"] >= 200
    assert 0 < SEEN["refused"] < SEEN["lines"] and 0 < SEEN["sweep refused"] < SEEN["sweep files"]
