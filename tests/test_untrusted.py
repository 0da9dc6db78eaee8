"""Files planted in a shared results folder: the report copies nothing from outside it, and the reader of
untrusted files neither hangs on a FIFO nor follows a link nor reads without bound."""

from __future__ import annotations

import json
import os
import threading

import pytest

from experiments import untrusted
from paper_figs import report

KEY = "0123456789abcdef" * 2


def result_row(task: str = "mqar", key: str = KEY) -> dict[str, str]:
    return {"task.name": task, "key": key}


@pytest.fixture
def folders(tmp_path):
    results, outside, runs = tmp_path / "results", tmp_path / "home", tmp_path / "page" / "runs"
    (results / "mqar").mkdir(parents=True)
    outside.mkdir()
    runs.mkdir(parents=True)
    (outside / "creds.json").write_text(json.dumps({"secret": "s3cr3t"}))
    return results, outside, runs


def test_the_report_copies_a_plain_result_inside_the_folder(folders):
    results, _, runs = folders
    (results / "mqar" / f"{KEY[:16]}.json").write_text(json.dumps({"key": KEY, "final": {"test_accuracy": 1.0}}))
    assert report.copy_run(results, result_row(), runs) == f"{KEY[:16]}.json"
    assert json.loads((runs / f"{KEY[:16]}.json").read_text())["key"] == KEY


def test_the_report_does_not_copy_a_result_that_links_outside_the_folder(folders):
    results, outside, runs = folders
    (results / "mqar" / f"{KEY[:16]}.json").symlink_to(outside / "creds.json")
    assert report.copy_run(results, result_row(), runs) is None
    (results / "elsewhere").symlink_to(outside, target_is_directory=True)  # a linked task folder
    assert report.copy_run(results, result_row(task="elsewhere"), runs) is None
    assert not list(runs.iterdir())


@pytest.mark.parametrize("task, key", [("../home", KEY), ("/tmp", KEY), ("mqar", "../../home/creds"),
                                       ("mqar", "/etc/passwd"), ("mqar", "")])
def test_a_csv_row_naming_a_path_copies_nothing(folders, task, key):
    results, outside, runs = folders
    assert report.result_file(results, result_row(task, key)) is None
    assert report.copy_run(results, result_row(task, key), runs) is None
    assert not list(runs.iterdir())


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    done = []
    reader = threading.Thread(target=lambda: done.append(pytest.raises(untrusted.Untrusted, untrusted.read_json,
                                                                        fifo, root=tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert done, "reading a FIFO blocked"
    assert "not a plain file" in str(done[0].value)


def test_links_devices_huge_and_deep_files_are_refused(tmp_path):
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with pytest.raises(untrusted.Untrusted, match="leads outside"):
        untrusted.read_bytes(tmp_path / "zero.json", root=tmp_path)
    (tmp_path / "plain.json").write_text("{}")
    (tmp_path / "inner.json").symlink_to(tmp_path / "plain.json")  # a link, even to a file in the folder
    with pytest.raises(untrusted.Untrusted, match="not a plain file"):
        untrusted.read_bytes(tmp_path / "inner.json", root=tmp_path)
    with open(tmp_path / "huge.json", "wb") as file:  # sparse: 8 GB that take no disk
        file.truncate(8 * 2**30)
    with pytest.raises(untrusted.Untrusted, match="more than"):
        untrusted.read_bytes(tmp_path / "huge.json", root=tmp_path)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(untrusted.Untrusted, match="nests deeper"):
        untrusted.read_json(tmp_path / "deep.json", root=tmp_path)
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(untrusted.Untrusted, match="not JSON"):
        untrusted.read_json(tmp_path / "bad.json", root=tmp_path)
    assert untrusted.read_json(tmp_path / "plain.json", root=tmp_path) == {}


@pytest.mark.parametrize("plant", ["fifo", "link out", "deep"])
def test_a_planted_result_is_set_aside_once_and_the_run_is_done_again(tmp_path, plant, capsys):
    from experiments import cache, sweeps

    config = sweeps.configs("mqar_pairs", "smoke")[0]
    path = cache.result_path(config, tmp_path)
    path.parent.mkdir(parents=True)
    if plant == "fifo":
        os.mkfifo(path)  # reading it would block forever
    elif plant == "link out":
        (tmp_path.parent / "outside.json").write_text(json.dumps({"key": config.key()}))
        path.symlink_to(tmp_path.parent / "outside.json")
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
    assert cache.load_result(config, tmp_path) is None
    assert not os.path.lexists(path) and len(list(path.parent.glob("*.corrupt-*"))) == 1
    assert capsys.readouterr().err.count("\n") == 1
