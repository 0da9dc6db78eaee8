"""Inputs that reach a command through a path the other reliability tests do not: each ends in one line (or
one warning and the rest built), never a traceback.

A directory where a run's lock belongs, as the sweep's progress count reads it; a variant name with TeX in a
sweep CSV, drawn by the report's gallery and by every figure; a sweep CSV without a column the commands read;
a full disk under a run, a sweep, the ledger, the report and the figures; and a directory where a command's
input or output file belongs. A full disk is simulated in-process: every file opened for writing under a
folder fails its writes with ``ENOSPC``, where the kernel reports it.
"""

from __future__ import annotations

import builtins
import errno
import importlib
import io
import json
import os
import pickle
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import subprocess_env

from experiments import cache, progress, sweep, untrusted
from experiments.atomic import NoSpace, atomic_write_text
from experiments.executors import Lost
from experiments.runs import RunConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = {"task": {"name": "mqar", "vocab_size": 16, "seq_len": 16, "num_kv_pairs": 2, "num_test_examples": 32},
        "model": {"d_model": 16, "num_heads": 2},
        "train": {"steps": 2, "batch_size": 8, "warmup_steps": 1, "eval_every": 1, "target_accuracy": 0.0}}
TINY_FLAGS = ["--task", "mqar", "--vocab-size", "16", "--seq-len", "16", "--num-kv-pairs", "2",
              "--num-test-examples", "32", "--d-model", "16", "--num-heads", "2", "--steps", "2", "--batch-size", "8",
              "--warmup-steps", "1", "--eval-every", "1", "--no-progress"]
TEX = "$\\frac{1}{$"  # not mathtext that parses: drawn as mathtext, it raises
PLOTS = sorted(p.stem for p in (ROOT / "paper_figs").glob("plot_*.py") if p.stem != "plot_speed")


def tiny_config(seed: int = 0) -> RunConfig:
    return RunConfig.from_dict({**TINY, "train": {**TINY["train"], "seed": seed}})


def tiny_sweep(path: Path, seeds: int = 1) -> Path:
    path.write_text(json.dumps({"base": TINY, "grid": {"train.seed": list(range(seeds))}}))
    return path


def err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def results_in(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in folder.glob("*.json") if not p.name.endswith(".failed.json")]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of an atomic write or a lock left in ``folder`` (none may outlive a failed write)."""
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# --- a full disk, simulated where the kernel reports it: at the write -----------------------------------------

class _FullFile:
    """A file open for writing on a full disk: it opens, and every write of data fails with ENOSPC."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        if len(data):  # nothing to store needs no space
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return 0

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


class FullDisk:
    """Folders on a full disk: a file opened for writing in one (whose name ends with one of ``suffixes``) opens,
    and every write to it fails with ENOSPC."""

    def __init__(self):
        self.folders: list[Path] = []
        self.suffixes: tuple[str, ...] = ("",)

    def fill(self, folder: Path, suffixes: tuple[str, ...] = ("",)) -> None:
        self.folders.append(Path(folder).absolute())
        self.suffixes = suffixes

    def free(self) -> None:
        self.folders.clear()

    def covers(self, file) -> bool:
        name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
        path = Path(os.path.abspath(name))
        return any(path.is_relative_to(f) for f in self.folders) and path.name.endswith(self.suffixes)


@pytest.fixture
def full_disk(monkeypatch):
    """A :class:`FullDisk`: ``open``, ``io.open`` (``Path.write_text``, ``os.fdopen``) consult it."""
    disk, real_open = FullDisk(), io.open

    def opening(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return _FullFile(handle) if set(mode) & set("wax+") and disk.covers(file) else handle

    monkeypatch.setattr(io, "open", opening)
    monkeypatch.setattr(builtins, "open", opening)
    return disk


def test_an_atomic_write_on_a_full_disk_names_the_folder_and_leaves_no_temporary(tmp_path, full_disk):
    (tmp_path / "old.json").write_text("{}")
    full_disk.fill(tmp_path)
    with pytest.raises(NoSpace, match=f"no space left in {tmp_path}$"):
        atomic_write_text(tmp_path / "out.json", "{}")
    with pytest.raises(NoSpace):
        atomic_write_text(tmp_path / "old.json", "{\"new\": 1}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"] and (tmp_path / "old.json").read_text() == "{}"
    sent = pickle.loads(pickle.dumps(NoSpace(tmp_path)))  # as a worker process would send it back
    assert isinstance(sent, NoSpace) and str(sent) == f"no space left in {tmp_path}" and sent.errno == errno.ENOSPC


def test_a_full_disk_stops_a_run_with_one_line_and_the_same_command_works_once_freed(tmp_path, full_disk, capsys):
    from experiments import run as run_cli

    results = tmp_path / "results"
    argv = [*TINY_FLAGS, "--results-dir", str(results)]
    full_disk.fill(results)  # the lock is the first write: it fails, and so does the failure record
    assert run_cli.main(argv) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and f"no space left in {results / 'mqar'}" in err[0], err
    assert list((results / "mqar").iterdir()) == []  # no lock, no failure record, no temporary
    full_disk.free()
    assert run_cli.main(argv) == 0 and [r["status"] for r in results_in(results / "mqar")] == ["finished"]


def test_a_disk_that_fills_during_training_keeps_the_checkpoint_and_the_rerun_finishes(tmp_path, full_disk,
                                                                                        capsys):
    from experiments import run as run_cli

    results = tmp_path / "results"
    argv = [*TINY_FLAGS, "--results-dir", str(results)]
    full_disk.fill(results, suffixes=(".json",))  # the lock is written; the result and the failure record are not
    assert run_cli.main(argv) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and "no space left in" in err[0], err
    folder = results / "mqar"
    assert not leftovers(folder) and not list(folder.glob("*.json")) and not list(folder.glob("*.lock"))
    assert list(folder.glob("*.ckpt"))  # the last evaluation's checkpoint: the rerun resumes from it
    full_disk.free()
    assert run_cli.main(argv) == 0 and [r["steps_run"] for r in results_in(folder)] == [2]


def test_a_full_disk_fails_each_run_of_a_sweep_in_one_line_and_the_rerun_writes_the_csv(tmp_path, full_disk,
                                                                                         capsys):
    spec, results, csv = tiny_sweep(tmp_path / "s.json", seeds=2), tmp_path / "results", tmp_path / "out.csv"
    argv = [str(spec), "--workers", "1", "--csv", str(csv), "--results-dir", str(results)]
    full_disk.fill(results)
    assert sweep.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count(f"no space left in {results / 'mqar'}") == 2, err
    assert not csv.exists() and not leftovers(results)
    full_disk.free()
    assert sweep.main(argv) == 0 and len(csv.read_text().splitlines()) == 3


def test_a_sweeps_csv_on_a_full_disk_is_one_line_and_its_runs_stay_cached(tmp_path, full_disk, capsys):
    spec, results, csv = tiny_sweep(tmp_path / "s.json"), tmp_path / "results", tmp_path / "figs" / "out.csv"
    argv = [str(spec), "--workers", "1", "--csv", str(csv), "--results-dir", str(results)]
    full_disk.fill(csv.parent)
    assert sweep.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: --csv {csv} cannot be written (no space left in {csv.parent}); rerun to write it", err
    assert not csv.exists() and not leftovers(tmp_path) and len(results_in(results / "mqar")) == 1


def test_a_lost_worker_whose_record_cannot_be_written_is_still_reported_lost(tmp_path, full_disk, capsys):
    class Dying:  # an executor whose every worker is killed
        name, workers = "dying", 1

        def map(self, fn, calls, on_poll=None):
            for index in range(len(calls)):
                yield index, Lost("worker died: signal 9")

    configs = [tiny_config(0)]
    (tmp_path / "mqar").mkdir()
    full_disk.fill(tmp_path)
    outcome = sweep.run_all(configs, executor=Dying(), root=str(tmp_path))
    assert outcome["lost"] == [configs[0].run_id()]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "lost" in err and not leftovers(tmp_path)


def test_a_lock_on_a_full_disk_is_not_left_behind_and_names_the_folder(tmp_path, full_disk):
    lock = tmp_path / "x.lock"
    full_disk.fill(tmp_path)
    with pytest.raises(NoSpace, match=f"no space left in {tmp_path}"):
        cache.acquire(lock)
    assert list(tmp_path.iterdir()) == []


# --- a directory where a lock belongs, as the sweep's progress reads it ---------------------------------------

def test_the_untrusted_reader_refuses_a_folder_as_not_a_plain_file(tmp_path):
    (tmp_path / "x.json").mkdir()
    with pytest.raises(untrusted.Untrusted, match="not a plain file"):
        untrusted.read_bytes(tmp_path / "x.json", root=tmp_path)


def test_a_directory_at_a_lock_is_nobodys_and_counts_as_not_running(tmp_path):
    config = tiny_config()
    key, result, lock, failure = cache.run_files(config, tmp_path)
    (lock / "inside").mkdir(parents=True)
    assert not cache.holder_alive(lock) and cache.holder_line(lock).startswith("held (unreadable lock)")
    assert progress.state_counts([(key, result, lock, failure)]) == {"done": 0, "running": 0, "failed": 0,
                                                                      "total": 1}
    assert progress.Progress([config], str(tmp_path)).line().startswith("[0/1 done, 0 running, 0 failed")


def test_a_directory_at_a_result_or_failure_path_counts_as_neither_done_nor_failed(tmp_path):
    key, result, lock, failure = cache.run_files(tiny_config(), tmp_path)
    result.mkdir(parents=True)
    failure.mkdir()
    assert progress.state_counts([(key, result, lock, failure)]) == {"done": 0, "running": 0, "failed": 0,
                                                                      "total": 1}


@pytest.mark.parametrize("flag", ["--status", "--list"])
def test_a_directory_at_a_lock_gives_the_sweeps_status_and_list(tmp_path, capsys, flag):
    spec = tiny_sweep(tmp_path / "s.json")
    (cache.lock_path(tiny_config(), tmp_path / "results") / "inside").mkdir(parents=True)
    assert sweep.main([str(spec), flag, "--results-dir", str(tmp_path / "results")]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(out.strip().splitlines()) == 1, (out, err)
    assert out.startswith("[0/1 done, 0 running, 0 failed") if flag == "--status" else "mqar" in out


def test_a_directory_at_a_lock_does_not_stop_a_sweep(tmp_path, capsys):
    spec, results, csv = tiny_sweep(tmp_path / "s.json"), tmp_path / "results", tmp_path / "out.csv"
    lock = cache.lock_path(tiny_config(), results)
    (lock / "inside").mkdir(parents=True)
    assert sweep.main([str(spec), "--workers", "1", "--csv", str(csv), "--results-dir", str(results)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("is a directory where a lock file belongs") == 1, err
    assert len(csv.read_text().splitlines()) == 2 and not lock.exists()


@pytest.mark.parametrize("link", ["loop", "dangling"])
def test_a_lock_that_is_a_link_loop_or_dangling_is_nobodys(tmp_path, link):
    lock = tmp_path / "x.lock"
    lock.symlink_to(lock if link == "loop" else tmp_path / "nowhere")
    assert not cache.holder_alive(lock)
    assert cache.acquire(lock) and lock.read_text() == f"{platform.node()} {os.getpid()}"


def test_the_report_lists_a_run_whose_result_path_is_a_directory_without_a_copy(tmp_path):
    from paper_figs import report

    key = "0123456789abcdef" * 2
    (tmp_path / "results" / "mqar" / f"{key[:16]}.json").mkdir(parents=True)
    (tmp_path / "runs").mkdir()
    assert report.copy_run(tmp_path / "results", {"task.name": "mqar", "key": key}, tmp_path / "runs") is None


# --- sweep CSVs: a TeX name, a missing column, for the report, the ledger and every figure --------------------

def plot_rows(names=("softmax", TEX), drop: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Rows with every column any figure reads, three seeds of each variant in ``names``."""
    rows = []
    for name in names:
        for seed in "012":
            row = {"sweep": "x", "profile": "quick", "task.name": "mqar", "task.seq_len": "16",
                   "task.num_kv_pairs": "2", "task.vocab_size": "16", "task.reordering": "none",
                   "task.train_min_len": "2", "task.train_max_len": "4", "task.num_facts": "8",
                   "model.attention.name": name, "model.d_model": "16", "model.num_heads": "2",
                   "model.mlp_ratio": "4", "model.mlp_activation": "relu", "model.token_mixing": "shift",
                   "train.steps": "2", "train.lr": "0.003", "train.seed": seed, "status": "finished",
                   "steps_run": "2", "test_accuracy": "0.5", "learned": "0", "chance": "0.25",
                   "learned_threshold": "0.625", "aer": "0.3", "decode_state_bytes": "100",
                   "ffn_top_mass_at_queries": "0.5", "slice.length.2": "0.5", "slice.length.4": "0.4",
                   "length.32": "0.4", "attn.first_mass.max": "0.3", "attn.null_rate.mean": "0.1",
                   "model.num_layers": "1", "ceiling": "0.9", "sink.first_weight_dormant": "0.5",
                   "sink.first_weight_active": "0.0", "sink.null_dormant": "0.1", "sink.value_norm_ratio": "0.5",
                   "sink.uniform": "0.06"}
            rows.append({k: v for k, v in row.items() if k not in drop})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def exit_code(main, *args) -> int:
    """A command's exit status, whether its main returns it or exits with it (argparse's errors)."""
    try:
        return main(*args)
    except SystemExit as stopped:
        return stopped.code


def plot_main(name: str, argv: list[str]) -> int:
    module = importlib.import_module(f"paper_figs.{name}")
    return exit_code(module.main, module.plot, argv)


@pytest.mark.parametrize("name", PLOTS)
def test_every_figure_draws_a_variant_name_with_tex_as_text(tmp_path, name):
    csv = write_csv(tmp_path / "in.csv", plot_rows())
    assert plot_main(name, [str(csv), str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").stat().st_size > 1000


@pytest.mark.parametrize("drop", ["model.attention.name", "every other column"])
@pytest.mark.parametrize("name", PLOTS)
def test_every_figure_stops_in_one_line_on_a_csv_without_a_column_it_reads(tmp_path, capsys, name, drop):
    columns = set(plot_rows()[0]) - {"model.attention.name"} if drop != "model.attention.name" else {drop}
    csv = write_csv(tmp_path / "in.csv", plot_rows(drop=tuple(columns)))
    code = plot_main(name, [str(csv), str(tmp_path / "out.png")])
    err = err_lines(capsys)
    if code == 0:  # a figure that reads every other column as a missing number (NaN) draws an empty panel
        assert drop != "model.attention.name" and err == [] and (tmp_path / "out.png").exists()
    else:
        assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {csv}"), err
        assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("name", PLOTS)
def test_every_figure_into_a_folder_or_onto_a_full_disk_is_one_line(tmp_path, capsys, full_disk, name):
    csv = write_csv(tmp_path / "in.csv", plot_rows())
    (tmp_path / "folder.png").mkdir()
    assert plot_main(name, [str(csv), str(tmp_path / "folder.png")]) == 2
    full_disk.fill(tmp_path / "figs")
    assert plot_main(name, [str(csv), str(tmp_path / "figs" / "out.png")]) == 2
    first, second = err_lines(capsys)
    assert "folder.png" in first and second == f"error: no space left in {tmp_path / 'figs'}", (first, second)
    assert not leftovers(tmp_path) and (tmp_path / "folder.png").is_dir()


@pytest.mark.parametrize("content", ["folder", b"not json", b'{"kernels": 3}', b"[1]"])
def test_the_speed_figure_of_a_folder_or_a_report_of_another_shape_is_one_line(tmp_path, capsys, content):
    from paper_figs import plot_speed

    source = tmp_path / "speed.json"
    source.mkdir() if content == "folder" else source.write_bytes(content)
    assert plot_speed.main([str(source), str(tmp_path / "speed.png")]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("error: ") and str(source) in err[0], err


def test_the_speed_figure_draws_a_label_with_tex_as_text(tmp_path):
    from paper_figs import plot_speed

    rows = [{"label": TEX, "variant": TEX, "length": 64, "seconds_ratio": 2.0},
            {"label": "softmax", "variant": "softmax", "length": 64, "seconds_ratio": 1.0}]
    (tmp_path / "speed.json").write_text(json.dumps({"kernels": rows, "device": "cpu"}))
    assert plot_speed.main([str(tmp_path / "speed.json"), str(tmp_path / "speed.png")]) == 0
    assert (tmp_path / "speed.png").stat().st_size > 1000


@pytest.fixture
def report_inputs(tmp_path):
    """A figures folder with a gallery sweep of two variants (one named with TeX) and their results."""
    figures, results, theory = tmp_path / "figs", tmp_path / "results", tmp_path / "theory"
    for folder in (figures, results / "mqar", theory / "verdicts"):
        folder.mkdir(parents=True)
    rows = []
    for index, name in enumerate(["softmax", TEX]):
        key = f"{index:016x}" + "0" * 16
        maps = {"tokens": [1, 2], "maps": [[[[0.5, 0.5], [0.1, 0.9]]]]}
        (results / "mqar" / f"{key[:16]}.json").write_text(json.dumps({"key": key, "final": {"probe_maps": maps}}))
        rows.append({"task.name": "mqar", "train.seed": "0", "key": key, "model.attention.name": name,
                     "status": "finished", "test_accuracy": "0.5", "learned": "0"})
    write_csv(figures / "length_gen.csv", rows)
    return figures, results, theory


def report_main(figures: Path, results: Path, theory: Path, out: Path) -> int:
    from paper_figs import report

    return exit_code(report.main, ["--profile", "quick", "--figures", str(figures), "--theory", str(theory),
                                   "--results", str(results), "--out", str(out)])


def test_the_gallery_draws_a_variant_name_with_tex_as_text(report_inputs, tmp_path):
    # a command of its own: in this process a figure module may have set matplotlib's text mode already
    figures, results, theory = report_inputs
    page = tmp_path / "page" / "index.html"
    done = subprocess.run([sys.executable, "-m", "paper_figs.report", "--profile", "quick", "--figures", str(figures),
                           "--theory", str(theory), "--results", str(results), "--out", str(page)],
                          capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (page.parent / "attention_gallery.png").stat().st_size > 1000 and "2 variants" in page.read_text()


def test_the_report_leaves_out_a_csv_without_the_variant_column_with_one_warning(report_inputs, tmp_path, capsys):
    figures, results, theory = report_inputs
    write_csv(figures / "heads.csv", plot_rows(drop=("model.attention.name",)))
    assert report_main(figures, results, theory, tmp_path / "page" / "index.html") == 0
    err = err_lines(capsys)
    warned = [line for line in err if "left out" in line]
    assert len(warned) == 1 and "heads.csv" in warned[0] and "model.attention.name" in warned[0], err
    assert (tmp_path / "page" / "index.html").exists() and "Traceback" not in "\n".join(err)


def test_the_ledger_leaves_out_a_csv_without_the_variant_column_with_one_warning(tmp_path, capsys):
    from paper_figs import make_ledger

    figures = tmp_path / "figs"
    figures.mkdir()
    write_csv(figures / "length_gen.csv", plot_rows(drop=("model.attention.name",)))
    write_csv(figures / "stability.csv", plot_rows())
    assert make_ledger.main(["--profile", "quick", "--sweeps", str(figures), "--theory", str(tmp_path),
                             "--out", str(tmp_path / "CLAIMS.md")]) == 0
    err = capsys.readouterr().err
    assert err.count("left out") == 1 and "length_gen.csv" in err and "Traceback" not in err, err
    assert "| B3 |" in (tmp_path / "CLAIMS.md").read_text()


@pytest.mark.parametrize("fault", ["out is a folder", "full disk"])
def test_the_report_and_the_ledger_that_cannot_write_their_page_are_one_line(report_inputs, tmp_path, capsys,
                                                                            full_disk, fault):
    from paper_figs import make_ledger

    figures, results, theory = report_inputs
    page, ledger = tmp_path / "page" / "index.html", tmp_path / "page" / "CLAIMS.md"
    if fault == "out is a folder":
        page.mkdir(parents=True)
        ledger.mkdir()
    else:
        full_disk.fill(tmp_path / "page")
    assert report_main(figures, results, theory, page) == 2
    assert exit_code(make_ledger.main, ["--profile", "quick", "--sweeps", str(figures), "--theory", str(theory),
                                        "--out", str(ledger)]) == 2
    err = [line for line in err_lines(capsys) if not line.startswith(("Summary", "Machine", "Trained runs"))]
    expected = "is a folder" if fault == "out is a folder" else f"no space left in {tmp_path / 'page'}"
    assert len(err) == 2 and all(expected in line for line in err), err
    assert not leftovers(tmp_path / "page")


# --- the generated docs: a folder where one of their files belongs -----------------------------------------------

@pytest.mark.parametrize("where", ["README", "ledger"])
def test_the_docs_with_a_folder_where_a_file_belongs_are_one_line(tmp_path, monkeypatch, capsys, where):
    from paper_figs import docs

    folder = tmp_path / "planted.md"
    folder.mkdir()
    if where == "README":
        monkeypatch.setattr(docs, "README", folder)
    else:
        monkeypatch.setattr(docs, "dated_ledgers", lambda *args, **kwargs: [folder])
    assert docs.main(["--check"]) == 2
    err = err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("error: ") and str(folder) in err[0], err


@pytest.mark.parametrize("damage", ["folder", "no variant column", "no steps column", "steps not a number"])
def test_the_docs_quick_start_from_a_damaged_sweep_csv_is_one_error_naming_it(tmp_path, damage):
    from paper_figs import docs
    from paper_figs._rows import read_rows

    table = tmp_path / "quick.csv"
    rows = read_rows(docs.LR_TABLE)
    if damage == "folder":
        table.mkdir()
    elif damage == "steps not a number":
        write_csv(table, [{**r, "steps_run": "x"} for r in rows])
    else:
        drop = "model.attention.name" if damage == "no variant column" else "steps_run"
        write_csv(table, [{k: v for k, v in r.items() if k != drop} for r in rows])
    with pytest.raises(ValueError, match=f"^{table}") as raised:  # main() prints it in one line, exit status 2
        docs.quickstart(table)
    assert len(str(raised.value).splitlines()) == 1

