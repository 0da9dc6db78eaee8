"""experiments.results: a results folder as a DataFrame, read as untrusted input like the cache."""

from __future__ import annotations

import csv
import json
import os

import pytest

from experiments import results, sweep
from experiments.config import ConfigError


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The sinks sweep's smoke runs in a results folder, with the CSV the sweep writes from them."""
    folder = tmp_path_factory.mktemp("results")
    table = folder.parent / "sinks.csv"
    assert sweep.main(["sinks", "--profile", "smoke", "--workers", "1", "--results-dir", str(folder / "r"),
                       "--csv", str(table)]) == 0
    with open(table, newline="") as handle:
        return folder / "r", list(csv.DictReader(handle))


def test_a_sweeps_runs_load_as_its_csv(smoke):
    root, rows = smoke
    frame = results.load(root, sweep="sinks", profile="smoke")
    assert list(frame.columns) == list(rows[0])
    assert len(frame) == len(rows) == 5
    by_id = {r["run_id"]: r for r in rows}
    for _, run in frame.iterrows():
        assert float(by_id[run["run_id"]]["test_accuracy"]) == pytest.approx(run["test_accuracy"])
        assert by_id[run["run_id"]]["model.attention.name"] == run["model.attention.name"]


def test_the_whole_folder_and_one_task(smoke):
    root, rows = smoke
    assert len(results.load(root)) == len(rows)
    assert len(results.load(root, task="bigram_backcopy")) == len(rows)
    assert results.load(root, task="mqar").empty
    with pytest.raises(ConfigError, match="valid names are"):
        results.load(root, task="nope")


def test_curves_in_long_form_match_each_results_curve(smoke):
    root, _ = smoke
    curves = results.load(root, curves=True)
    assert list(curves.columns) == list(results.CURVE_COLUMNS)
    for path in (root / "bigram_backcopy").glob("*.json"):
        result = json.loads(path.read_text())
        mine = curves[(curves.run_id == result["run_id"]) & (curves.metric == "test_accuracy")]
        assert list(mine.value) == [p["test_accuracy"] for p in result["curve"]]


def _copy_of(smoke, tmp_path):
    import shutil

    root, _ = smoke
    shutil.copytree(root, tmp_path / "r", symlinks=True)
    return tmp_path / "r"


def test_a_result_with_planted_metrics_is_set_aside_with_one_warning(smoke, tmp_path, capsys):
    root = _copy_of(smoke, tmp_path)
    victim = next((root / "bigram_backcopy").glob("*.json"))
    result = json.loads(victim.read_text())
    result["final"]["test_accuracy"] = "x"  # a string where a number belongs: the learned gate cannot read it
    victim.write_text(json.dumps(result))
    frame = results.load(root)
    assert len(frame) == 4 and result["run_id"] not in set(frame["run_id"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if victim.name in line]
    assert len(warnings) == 1 and list(victim.parent.glob(victim.name + ".corrupt-*"))


@pytest.mark.parametrize("plant", ["malformed", "another_runs", "link_out", "fifo"])
def test_a_planted_file_is_set_aside_with_one_warning(smoke, tmp_path, capsys, plant):
    root = _copy_of(smoke, tmp_path)
    folder = root / "bigram_backcopy"
    planted = folder / "0123456789abcdef.json"
    if plant == "malformed":
        planted.write_text('{"config": {"task": ')
    elif plant == "another_runs":
        planted.write_text(next(folder.glob("*.json")).read_text())
    elif plant == "link_out":
        outside = tmp_path / "secret.json"
        outside.write_text(json.dumps({"config": {}}))
        planted.symlink_to(outside)
    else:
        os.mkfifo(planted)
    frame = results.load(root)
    assert len(frame) == 5  # the real runs, nothing from the planted file
    warnings = [line for line in capsys.readouterr().err.splitlines() if "0123456789abcdef" in line]
    assert len(warnings) == 1, warnings
    assert not os.path.lexists(planted) and list(folder.glob("0123456789abcdef.json.corrupt-*"))


def test_the_default_results_folder_is_under_the_current_folder_not_the_package(tmp_path, monkeypatch):
    from experiments.cache import results_dir

    monkeypatch.delenv("RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert results_dir().resolve() == tmp_path / "results"
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "elsewhere"))
    assert results_dir() == tmp_path / "elsewhere"
