"""Run a sweep and collect its results into one CSV.

    python -m experiments.sweep mqar_pairs --profile quick --workers 2 --csv out.csv

A sweep is a module in :mod:`experiments.sweeps` with ``PROFILES`` (names of
its sizes, e.g. ``smoke``, ``quick``, ``full``) and ``configs(profile)``, which
returns a list of :class:`~experiments.runs.RunConfig` built with plain loops.
A sweep file (JSON: ``base``, ``grid``, ``runs``; see
:func:`~experiments.sweep_files.file_configs`) works in place of a module.
Runs already in the result cache are not run again, so an interrupted sweep
resumes where it stopped. Where runs execute is an executor
(:mod:`experiments.executors`: local processes with one torch thread each,
since threads of several processes contending for a few cores slow every
attention op down; SLURM array jobs or local jobs through submitit). The CSV
has one row per config: the flattened config (``task.num_kv_pairs``,
``model.attention.name``, ...), the status and the final metrics; it is
written atomically after every run has finished.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from experiments import cli, metrics, plan, runs, sweeps, tracking
from experiments.config import ConfigError
from experiments.atomic import NoSpace, atomic_write_text, why
from experiments.executors import (EXECUTORS, LocalExecutor, Lost, default_job_folder, make_executor,
                                  private_job_folder)
from experiments.cache import (Locked, check_results_dir, check_task_folder, failure_path, load_result,
                               record_failure, result_path, results_dir, run_files)
from experiments.progress import Progress, Throttle, counts_line, state_counts
from experiments.runs import RunConfig, check_compatible, check_fits, describe, run
from experiments.sweep_files import MAX_RUNS, file_configs, iter_file_configs

RESULT_COLUMNS = ("run_id", "key", "status", "diverged_at_step", "loss_spikes", "steps_run", "test_accuracy",
                  "test_exact_match", "test_loss", "train_loss", "ffn_top_mass", "ffn_top_mass_at_queries",
                  "head_diversity_at_queries", "decode_state_bytes", "wall_seconds",
                  "device_name")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one run of a sweep ended, as a worker reports it to :func:`run_all`.

    ``status``: ``done`` (trained now), ``cached``, ``failed`` (raised; traceback
    recorded), ``locked`` (another runner holds it; only when not waiting) or
    ``lost`` (its worker died). ``line`` is what the sweep prints for it.
    """

    status: str
    line: str = ""


def _run_one(config_dict: dict[str, Any], root: str | None, wait: bool = True,
             lock_timeout: float | None = None, log: str = "none", sweep: str | None = None) -> Outcome:
    """Run one config; an exception becomes a ``failed`` record (with its traceback) and the sweep goes on.

    With ``wait=False`` a run another process holds is skipped and reported as ``locked``.
    """
    config = RunConfig.from_dict(config_dict)
    try:
        result, cached = run(config, root=root, progress=False, wait=wait, lock_timeout=lock_timeout, log=log,
                             sweep=sweep)
    except Locked:
        return Outcome("locked")
    except Exception as error:  # noqa: BLE001 - any failure of one run must not stop the sweep
        try:
            record_failure(config, error, root)
        except NoSpace as full:  # the disk that stopped the run cannot hold its failure record either
            return Outcome("failed", f"failed   {config.run_id()}  {full}; nothing recorded: rerun once there is space")
        return Outcome("failed", f"failed   {config.run_id()}  {type(error).__name__}: {error} (traceback in "
                                 f"{failure_path(config, root)})")
    line = describe(result).splitlines()[0] + f"  {result['status']}"
    return Outcome("cached", f"cached   {line}") if cached else Outcome("done", line)


def run_all(configs: list[RunConfig], *, executor: Any = None, workers: int = 1,
            root: str | None = None, lock_timeout: float | None = None, log: str = "none",
            sweep: str | None = None) -> dict[str, list[str]]:
    """Run every config that has no cached result on ``executor`` (default: local, ``workers`` processes);
    each run trained sends its evaluations to the tracker ``log`` names, grouped under ``sweep``.

    First pass: runs held by another runner are skipped; second pass: wait
    for those (or take them over if their runner died). Returns the run ids
    that ``failed`` (raised; traceback recorded) and that were ``lost``
    (their worker ended without a result, e.g. killed; no file left behind).
    """
    executor = executor or LocalExecutor(workers)
    todo = longest_first([c for c in configs if load_result(c, root) is None])
    print(f"{len(configs) - len(todo)} of {len(configs)} runs cached; running {len(todo)} "
          f"on {executor.name} with {executor.workers} worker(s)", file=sys.stderr)
    progress = Progress(configs, root)
    report = Throttle(lambda: print(progress.line(), file=sys.stderr), 60.0)
    outcome: dict[str, list[str]] = {"failed": [], "lost": []}
    for wait in (False, True):
        if not todo:
            break
        skipped = []
        calls = [(c.to_dict(), root, wait, lock_timeout, log, sweep) for c in todo]
        for index, ended in executor.map(_run_one, calls, on_poll=report):
            config = todo[index]
            if isinstance(ended, Lost):
                progress.lost.add(config.key())
                if not result_path(config, root).exists():  # recorded with its cause; a rerun does it again
                    try:
                        record_failure(config, ended.reason, root)
                    except NoSpace:  # said in the run's line below; a rerun does it again
                        pass
                ended = Outcome("lost", f"lost     {config.run_id()}  {ended.reason}")
            if ended.status == "locked":
                skipped.append(config)
                continue
            if ended.status in outcome:
                outcome[ended.status].append(config.run_id())
            print(f"{progress.line()} {ended.line}", file=sys.stderr)
        if skipped and not wait:
            print(f"{len(skipped)} run(s) held by another runner; waiting for them", file=sys.stderr)
        todo = skipped
    return outcome


def longest_first(configs: list[RunConfig]) -> list[RunConfig]:
    """The configs in the order a sweep hands them out: longest first by :mod:`experiments.plan`'s estimate on
    this machine, so no worker starts the longest run while the others finish (the order changes no result)."""
    device = plan.make_device("auto")
    return sorted(configs, key=lambda c: plan.estimate_run(c, device).seconds, reverse=True)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def analysis_columns(final: dict[str, Any]) -> dict[str, Any]:
    """Flat columns for the analyses in a result's final metrics (AER, attention statistics, slices, accuracy
    at the test lengths)."""
    columns: dict[str, Any] = {}
    if "aer" in final:
        columns["aer"] = min(final["aer"]["best_per_layer"])
        for layer, heads in enumerate(final["aer"].get("per_head", [])):  # as ReLA's table: best head, head mean
            columns[f"aer.layer{layer}.best"], columns[f"aer.layer{layer}.mean"] = min(heads), sum(heads) / len(heads)
        null = final["aer"].get("null_rate")
        if null:  # the cross-attention head that switches off most at unaligned words, and the same head elsewhere
            flat = [(u, a) for lu, la in zip(null["unaligned"], null["aligned"]) for u, a in zip(lu, la)]
            columns["cross_null.unaligned.max"], columns["cross_null.aligned.at_that_head"] = max(flat)
    for name, summary in final.get("attention_stats", {}).items():
        columns[f"attn.{name}.mean"] = summary["mean"]
        columns[f"attn.{name}.max"] = summary["max"]
    columns.update(sink_columns(final.get("sink")))
    for slice_name, groups in final.get("slices", {}).items():
        for value, accuracy in groups.items():
            columns[f"slice.{slice_name}.{value}"] = accuracy
    for length, accuracy in final.get("length_accuracy", {}).items():
        columns[f"length.{length}"] = accuracy
    return columns


def sink_columns(sink: Any) -> dict[str, Any]:
    """The sink probe's columns (:func:`experiments.metrics.sink_statistics`): each statistic of the most
    sink-like head (the largest first-token weight at dormant rows, over layers and heads), the mean of that
    weight over heads, and a uniform row's weight."""
    try:
        heads = [{name: layer[name][h] for name in metrics.SINK_STATISTICS}
                 for layer in sink["per_layer"] for h in range(len(layer["first_weight_dormant"]))]
        sinkiest = max(heads, key=lambda head: head["first_weight_dormant"])
        columns = {f"sink.{name}": float(value) for name, value in sinkiest.items()}
        columns["sink.first_weight_dormant.mean"] = sum(h["first_weight_dormant"] for h in heads) / len(heads)
        columns["sink.uniform"] = float(sink["uniform"])
    except (TypeError, KeyError, IndexError, ValueError):  # absent, or a result file of another shape
        return {}
    return columns


def _largest(values: Any) -> float | None:
    """The largest of a list of numbers; None for anything else (a result file is untrusted input)."""
    if isinstance(values, list) and values and all(isinstance(v, (int, float)) for v in values):
        return float(max(values))
    return None


def probe_columns(result: dict[str, Any]) -> dict[str, Any]:
    """Flat columns of a result's mechanism probes: the largest per-layer RMS(attention output) / RMS(residual)
    at initialisation and at the last evaluation, and the largest pre-clip gradient norm of the run."""
    probes = result.get("probes") if isinstance(result.get("probes"), dict) else {}
    curve = result.get("curve") if isinstance(result.get("curve"), list) else []
    last = next((p["output_ratio"] for p in reversed(curve) if isinstance(p, dict) and p.get("output_ratio")), None)
    columns = {"probe.output_ratio_at_init.max": _largest(probes.get("output_ratio_at_init")),
               "probe.output_ratio.final.max": _largest(last),
               "probe.grad_norm_max": _largest([probes.get("grad_norm_max")]),
               "probe.null_rate_at_init": _largest([probes.get("null_rate_at_init")]),
               "probe.sparsity_at_init": _largest([probes.get("sparsity_at_init")])}
    return {k: v for k, v in columns.items() if v is not None}


def curve_column(result: dict[str, Any]) -> dict[str, str]:
    """``curve.test_accuracy``: the run's test accuracy at each evaluation, ``"step:accuracy"`` pairs separated
    by spaces (how fast a run learned: the steps it took to reach an accuracy); empty for a malformed curve."""
    curve = result.get("curve") if isinstance(result.get("curve"), list) else []
    points = [(p.get("step"), p.get("test_accuracy")) for p in curve if isinstance(p, dict)]
    if not points or not all(isinstance(s, int) and isinstance(a, (int, float)) for s, a in points):
        return {}
    return {"curve.test_accuracy": " ".join(f"{s}:{a:.4f}" for s, a in points)}


def run_row(config: RunConfig, result: dict[str, Any], *, sweep: str | None, profile: str | None) -> dict[str, Any]:
    """One run as a sweep CSV's row: the flattened config (dotted names), the result's columns, the learned
    gate, the analyses, the probes and the accuracy curve."""
    final = result.get("final", {})
    row = {"sweep": sweep, "profile": profile, **flatten(config.to_dict())}
    for column in RESULT_COLUMNS:
        row[column] = final.get(column, result.get(column))
    row.update(runs.learning(config, result))
    row.update(analysis_columns(final))
    row.update(probe_columns(result))
    row.update(curve_column(result))
    return row


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
        try:
            rows.append(run_row(config, result, sweep=sweep, profile=profile))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:  # a planted `final`
            raise RuntimeError(f"the result of {config.run_id()} ({result_path(config, root)}) has metrics of "
                               f"another shape ({type(error).__name__}: {str(error)[:80]}); delete it and rerun "
                               "the sweep") from None
    columns = list(dict.fromkeys(column for row in rows for column in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _parse_shard(text: str) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)``, or None if it is not two integers with 1 <= K <= N <= 100000."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.isdecimal() and len(p) <= 6 for p in parts):
        return None
    k, n = int(parts[0]), int(parts[1])
    return (k, n) if 1 <= k <= n <= 100_000 else None


def _stream_file(args: argparse.Namespace, shard: tuple[int, int] | None, parser: cli.Parser) -> int:
    """``--list`` / ``--status`` of a sweep file, one config at a time: constant memory at any size."""
    try:
        check_results_dir(args.results_dir)
        configs = iter_file_configs(args.name, args.allow_large)
        if shard is not None:
            configs = itertools.islice(configs, shard[0] - 1, None, shard[1])
        if args.list:
            for config in configs:
                print(config.run_id())
        else:
            counts = state_counts(run_files(config, args.results_dir) for config in configs)
            print(counts_line(counts, "0s" if counts["done"] + counts["failed"] == counts["total"] else "?"))
    except ConfigError as error:
        parser.error(str(error))
    return 0


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="python -m experiments.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"a sweep module, one of {sweeps.names()}, or a sweep file (*.json)")
    parser.add_argument("--profile", default=None, help="size of a sweep module (each lists its own; default quick)")
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="runs at once: processes (local), jobs in flight (submitit-local), array "
                             "parallelism (slurm); default 2, or 1 on a one-core machine")
    parser.add_argument("--csv", help="where to write the collected CSV (required unless --list or --status)")
    parser.add_argument("--results-dir", default=None, help="result cache root (default: $RESULTS_DIR or results/)")
    parser.add_argument("--list", action="store_true", help="print the run ids and exit")
    parser.add_argument("--status", action="store_true",
                        help="print the sweep's progress (done, running, failed) from the cache and exit")
    parser.add_argument("--plan", action="store_true",
                        help="print the sweep's runs, steps, FLOPs and estimated wall time on this device "
                             "(experiments.plan) and exit; runs nothing, writes nothing")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="run only the K-th of N interleaved slices of the sweep (1 <= K <= N) and write no "
                             "CSV: for doing a long sweep in chunks, e.g. one per job; collect with a plain run")
    parser.add_argument("--allow-large", action="store_true", help=f"run a sweep file of more than {MAX_RUNS} runs")
    parser.add_argument("--lock-timeout", type=cli.lock_seconds, default=None, metavar="SECONDS",
                        help="a run waiting longer than this for another runner's lock fails (recorded) instead")
    parser.add_argument("--log", choices=tracking.KINDS, default="none",
                        help="send each run's evaluations to TensorBoard (<results>/tensorboard/<sweep>/<run id>) "
                             "or W&B (grouped by sweep; offline unless WANDB_MODE says otherwise)")
    jobs = parser.add_argument_group("executor")
    jobs.add_argument("--executor", default="local", choices=EXECUTORS,
                      help="local processes, SLURM array jobs, or submitit's local executor (default local)")
    jobs.add_argument("--partition", default=None, help="SLURM partition (slurm only)")
    jobs.add_argument("--time-min", type=int, default=60, help="time limit per job in minutes (submitit executors)")
    jobs.add_argument("--gpus-per-job", type=int, default=0,
                      help="GPUs per job (submitit executors); > 0 trains on cuda, 0 on cpu")
    jobs.add_argument("--cpus-per-job", type=int, default=1, help="CPUs (and torch threads) per job (submitit)")
    jobs.add_argument("--submitit-dir", default=None,
                      help="submitit's job files and logs, a folder only you can write, outside the results folder "
                           f"(default $SUBMITIT_DIR or {default_job_folder()}, then /<sweep>)")
    return parser


def check_args(args: argparse.Namespace, parser: cli.Parser) -> tuple[int, int] | None:
    """Refuse impossible flag combinations before anything is read; returns the ``--shard`` as ``(K, N)``."""
    for flag in ("workers", "time_min", "cpus_per_job"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.gpus_per_job < 0:
        parser.error(f"--gpus-per-job must be at least 0, got {args.gpus_per_job}")
    if args.executor != "slurm" and args.partition:
        parser.error("--partition applies to --executor slurm only")
    shard = None
    if args.shard is not None:
        shard = _parse_shard(args.shard)
        if shard is None:
            parser.error(f"--shard must be K/N with integers 1 <= K <= N <= 100000, got {args.shard!r}")
    if args.csv is None and not (args.list or args.status or args.plan or shard):
        parser.error("--csv is required (or --list / --status / --plan / --shard)")
    if args.csv is not None and Path(args.csv).is_dir():
        parser.error(f"--csv {args.csv} is a folder; name the CSV file to write (checked before any run)")
    return shard


def read_configs(args: argparse.Namespace, parser: cli.Parser) -> tuple[list[RunConfig], str, str]:
    """The sweep's configs, its name and its profile (``file`` for a sweep file); jobs that may run on other
    machines have ``device=auto`` pinned to the jobs' device."""
    try:
        if args.name.endswith(".json"):
            if args.profile is not None:
                raise ConfigError("--profile applies to sweep modules; a sweep file lists its runs itself")
            configs, sweep_name, profile = file_configs(args.name, args.allow_large), Path(args.name).stem, "file"
        else:
            profile = args.profile or "quick"
            configs, sweep_name = sweeps.configs(args.name, profile), args.name
    except ConfigError as error:
        parser.error(str(error))
    if args.executor != "local":
        device = "cuda" if args.gpus_per_job else "cpu"
        configs = [c.on(device) if c.train.device == "auto" else c for c in configs]
    return configs, sweep_name, profile


def print_plan(configs: list[RunConfig], sweep_name: str, profile: str, args: argparse.Namespace,
               parser: cli.Parser) -> int:
    try:
        device = plan.make_device(configs[0].device_type() if configs else "auto")
        print(plan.table([plan.plan_sweep(sweep_name, configs, device, args.workers)], device, args.workers, profile))
    except ConfigError as error:
        parser.error(str(error))
    return 0


def check_configs(configs: list[RunConfig], args: argparse.Namespace, parser: cli.Parser) -> None:
    """The results folder and each task folder are usable; on this machine, every config fits it (all checked
    before any run)."""
    try:
        check_results_dir(args.results_dir)
        for config in {result_path(c, args.results_dir).parent: c for c in configs}.values():  # each folder once
            check_task_folder(config, args.results_dir)
        if args.executor == "local":
            for config in configs:
                check_fits(config)
                check_compatible(config)
    except ConfigError as error:
        parser.error(str(error))


def build_executor(args: argparse.Namespace, sweep_name: str, parser: cli.Parser) -> Any:
    try:
        folder = Path(args.submitit_dir) if args.submitit_dir else default_job_folder() / sweep_name
        if args.executor != "local":
            folder = private_job_folder(folder, results_dir(args.results_dir))
        return make_executor(args.executor, workers=args.workers, partition=args.partition,
                             time_min=args.time_min, gpus_per_job=args.gpus_per_job,
                             cpus_per_job=args.cpus_per_job, folder=folder)
    except (ImportError, RuntimeError, ValueError) as error:
        parser.error(str(error))


def run_until_interrupted(configs: list[RunConfig], executor: Any, args: argparse.Namespace,
                          argv: list[str] | None, sweep_name: str) -> dict[str, list[str]] | None:
    """:func:`run_all`, or None after an interrupt (Ctrl-C or TERM), with the command that resumes the sweep."""
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's or kill's TERM stops the workers too
    try:
        return run_all(configs, executor=executor, root=args.results_dir, lock_timeout=args.lock_timeout,
                       log=args.log, sweep=sweep_name)
    except KeyboardInterrupt:
        counts = Progress(configs, args.results_dir).counts()
        command = " ".join(shlex.quote(a) for a in ["python", "-m", "experiments.sweep", *(argv or sys.argv[1:])])
        print(f"\ninterrupted: {counts['done']} of {counts['total']} runs done, {counts['total'] - counts['done']} "
              f"left (an interrupted run resumes from its last checkpoint); resume with: {command}", file=sys.stderr)
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_csv(configs: list[RunConfig], sweep_name: str, profile: str, args: argparse.Namespace) -> int:
    try:
        text = collect(configs, sweep=sweep_name, profile=profile, root=args.results_dir)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        atomic_write_text(Path(args.csv), text)
    except OSError as error:  # a full disk, a folder made unwritable meanwhile: the runs are cached
        print(f"error: --csv {args.csv} cannot be written ({why(error)}); rerun to write it", file=sys.stderr)
        return 1
    print(f"wrote {args.csv} ({len(configs)} rows)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shard = check_args(args, parser)
    if args.name.endswith(".json") and (args.list or args.status) and args.profile is None:
        return _stream_file(args, shard, parser)
    configs, sweep_name, profile = read_configs(args, parser)
    if args.plan:  # before the results folder is made or any config is checked against this machine
        return print_plan(configs, sweep_name, profile, args, parser)
    try:
        tracking.check_available(args.log)
        for config in configs if args.log == "tensorboard" else []:  # no event written through a link out
            tracking.log_folder(results_dir(args.results_dir), config.run_id(), sweep_name)
    except ConfigError as error:
        parser.error(str(error))
    check_configs(configs, args, parser)
    everything = configs
    if shard is not None:
        configs = configs[shard[0] - 1::shard[1]]
    if args.list:
        print("\n".join(c.run_id() for c in configs))
        return 0
    if args.status:
        print(Progress(configs, args.results_dir).line())
        return 0

    outcome = run_until_interrupted(configs, build_executor(args, sweep_name, parser), args, argv, sweep_name)
    if outcome is None:
        return 130
    if outcome["lost"]:
        print(f"error: {len(outcome['lost'])} run(s) lost their worker (e.g. {outcome['lost'][0]}); nothing was "
              "written for them: rerun the sweep to do them (finished runs are kept)", file=sys.stderr)
        return 1
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]} done; the whole sweep: {Progress(everything, args.results_dir).line()}",
              file=sys.stderr)
        return 0
    return write_csv(configs, sweep_name, profile, args)


if __name__ == "__main__":
    sys.exit(main())
