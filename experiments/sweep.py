"""Run a sweep and collect its results into one CSV.

    python -m experiments.sweep mqar_pairs --profile quick --workers 2 --csv out.csv

A sweep is a module in :mod:`experiments.sweeps` with ``PROFILES`` (names of
its sizes, e.g. ``smoke``, ``quick``, ``full``) and ``configs(profile)``, which
returns a list of :class:`~experiments.runs.RunConfig` built with plain loops.
Runs already in the result cache are not run again, so an interrupted sweep
resumes where it stopped. Workers are separate processes with one torch
thread each (several threads per process on few cores made attention ops
30-300x slower). The CSV has one row per config: the flattened config
(``task.num_kv_pairs``, ``model.attention.name``, ...), the status and the
final metrics; it is written atomically after every run has finished.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import csv
import importlib
import io
import multiprocessing
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any

from experiments import sweeps
from experiments.config import ConfigError
from experiments.io import atomic_write_text
from experiments.runs import Locked, RunConfig, describe, failure_path, load_result, record_failure, run

RESULT_COLUMNS = ("run_id", "key", "status", "diverged_at_step", "steps_run", "test_accuracy",
                  "test_exact_match", "test_loss", "train_loss", "ffn_top_mass", "decode_state_bytes", "wall_seconds",
                  "device_name")


def sweep_names() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(sweeps.__path__) if not info.name.startswith("_"))


def load_sweep(name: str):
    if name not in sweep_names():
        raise ConfigError(f"unknown sweep {name!r}; valid names are {sweep_names()}")
    return importlib.import_module(f"experiments.sweeps.{name}")


def sweep_configs(name: str, profile: str) -> list[RunConfig]:
    module = load_sweep(name)
    if profile not in module.PROFILES:
        raise ConfigError(f"sweep {name!r} has no profile {profile!r}; valid profiles are {list(module.PROFILES)}")
    configs = module.configs(profile)
    keys = [c.key() for c in configs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"sweep {name!r} profile {profile!r} lists the same config twice")
    return configs


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _run_one(config_dict: dict[str, Any], root: str | None, wait: bool = True) -> str:
    """Run one config; an exception becomes a ``failed`` record (with its traceback) and the sweep goes on.

    With ``wait=False`` a run another process holds is skipped and reported as ``locked``.
    """
    config = RunConfig.from_dict(config_dict)
    try:
        result, cached = run(config, root=root, progress=False, wait=wait)
    except Locked:
        return LOCKED
    except Exception as error:  # noqa: BLE001 - any failure of one run must not stop the sweep
        record_failure(config, error, root)
        return f"run      {config.run_id()}  failed: {type(error).__name__}: {error} (traceback in " \
               f"{failure_path(config, root)})"
    return ("cached   " if cached else "") + describe(result).splitlines()[0] + f"  {result['status']}"


LOCKED = "locked"


def run_all(configs: list[RunConfig], *, workers: int, root: str | None = None) -> None:
    """Run every config that has no cached result, ``workers`` at a time.

    First pass: runs held by another runner are skipped; second pass: wait
    for those (or take them over if their runner died).
    """
    todo = [c for c in configs if load_result(c, root) is None]
    print(f"{len(configs) - len(todo)} of {len(configs)} runs cached; running {len(todo)} "
          f"with {workers} worker(s)", file=sys.stderr)
    for wait in (False, True):
        if not todo:
            return
        skipped = []
        for config, message in zip(todo, _map(todo, workers=workers, root=root, wait=wait)):
            if message == LOCKED:
                skipped.append(config)
        if skipped and not wait:
            print(f"{len(skipped)} run(s) held by another runner; waiting for them", file=sys.stderr)
        todo = skipped


def _map(configs: list[RunConfig], *, workers: int, root: str | None, wait: bool) -> list[str]:
    messages: dict[int, str] = {}
    total = len(configs)
    if workers <= 1:
        _init_worker()
        for i, config in enumerate(configs):
            messages[i] = _run_one(config.to_dict(), root, wait)
            if messages[i] != LOCKED:
                print(f"[{len(messages)}/{total}] {messages[i]}", file=sys.stderr)
        return [messages[i] for i in range(total)]
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending = {pool.submit(_run_one, c.to_dict(), root, wait): i for i, c in enumerate(configs)}
        for done in futures.as_completed(pending):
            messages[pending[done]] = done.result()
            if messages[pending[done]] != LOCKED:
                print(f"[{len(messages)}/{total}] {messages[pending[done]]}", file=sys.stderr)
    return [messages[i] for i in range(total)]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def analysis_columns(final: dict[str, Any]) -> dict[str, Any]:
    """Flat columns for the analyses in a result's final metrics (AER, attention statistics, slices)."""
    columns: dict[str, Any] = {}
    if "aer" in final:
        columns["aer"] = min(final["aer"]["best_per_layer"])
    for name, summary in final.get("attention_stats", {}).items():
        columns[f"attn.{name}.mean"] = summary["mean"]
        columns[f"attn.{name}.max"] = summary["max"]
    for slice_name, groups in final.get("slices", {}).items():
        for value, accuracy in groups.items():
            columns[f"slice.{slice_name}.{value}"] = accuracy
    return columns


def collect(configs: list[RunConfig], *, sweep: str, profile: str, root: str | None = None) -> str:
    """CSV text with one row per config; every config must have a result."""
    rows = []
    failed = [c.run_id() for c in configs if load_result(c, root) is None and failure_path(c, root).exists()]
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0]}; see their .failed.json tracebacks, "
                           "fix the cause and rerun the sweep (finished runs are kept)")
    for config in configs:
        result = load_result(config, root)
        if result is None:
            raise RuntimeError(f"no result for {config.run_id()}; run the sweep first")
        final = result.get("final", {})
        row = {"sweep": sweep, "profile": profile, **flatten(config.to_dict())}
        for column in RESULT_COLUMNS:
            row[column] = final.get(column, result.get(column))
        row.update(analysis_columns(final))
        rows.append(row)
    columns = list(dict.fromkeys(column for row in rows for column in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"sweep module; one of {sweep_names()}")
    parser.add_argument("--profile", default="quick", help="size of the sweep (each sweep lists its own)")
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="parallel processes (default: 2, or 1 on a one-core machine)")
    parser.add_argument("--csv", help="where to write the collected CSV (required unless --list)")
    parser.add_argument("--results-dir", default=None, help="result cache root (default: $RESULTS_DIR or results/)")
    parser.add_argument("--list", action="store_true", help="print the run ids and exit")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.csv is None and not args.list:
        parser.error("--csv is required (or --list to print the run ids)")
    try:
        configs = sweep_configs(args.name, args.profile)
    except ConfigError as error:
        parser.error(str(error))
    if args.list:
        print("\n".join(c.run_id() for c in configs))
        return 0
    run_all(configs, workers=args.workers, root=args.results_dir)
    try:
        text = collect(configs, sweep=args.name, profile=args.profile, root=args.results_dir)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    atomic_write_text(Path(args.csv), text)
    print(f"wrote {args.csv} ({len(configs)} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
