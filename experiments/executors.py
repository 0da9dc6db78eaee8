"""Where a sweep's runs execute, behind one interface.

An executor takes a function and a list of argument tuples and yields
``(index, outcome)`` as each call finishes, where ``outcome`` is the call's
return value or a :class:`Lost` when the worker ended without returning
(killed, out of memory, cancelled by the scheduler). Three exist:

- ``local``: N worker processes on this machine (spawned, one torch thread
  each on CPU; one GPU each, round robin, where GPUs exist).
- ``slurm``: one SLURM array job per sweep through ``submitit`` (partition,
  time limit, GPUs and CPUs per job, how many array tasks run at once).
- ``submitit-local``: the same submitit code path with its local executor:
  every run is a real subprocess with submitit's job files, at most N at once.

The sweep runner (:mod:`experiments.sweep`) does not know which one it uses.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import multiprocessing
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

EXECUTORS = ("local", "slurm", "submitit-local")


@dataclasses.dataclass(frozen=True)
class Lost:
    """A call whose worker ended without a return value."""

    reason: str


_STARTED: Any = None  # in a pool worker: the queue on which it says which call it starts


def _init_worker(gpu_ids: Any = None, pool_worker: bool = False, started: Any = None) -> None:
    global _STARTED
    _STARTED = started
    if pool_worker:  # Ctrl-C is the parent's to handle: it stops the workers itself (see LocalExecutor.map)
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # tqdm's default lock is a named semaphore; a worker stopped mid-run could not release it, and it
        # would be reported leaked at exit. A worker draws no bar beside another, so a thread lock does.
        import threading

        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
    if gpu_ids is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_ids.get())  # before CUDA is initialised in this process
    import torch

    torch.set_num_threads(1)


def _tracked(fn: Callable[..., Any], index: int, *args: Any) -> Any:
    """Runs in a pool worker: say which call starts in which process, then call ``fn``."""
    if _STARTED is not None:
        _STARTED.put((index, os.getpid()))
    return fn(*args)


def _signal_name(exitcode: int | None) -> str:
    import signal

    if exitcode is None or exitcode >= 0:
        return f"exit status {exitcode}"
    try:
        return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
    except ValueError:
        return f"signal {-exitcode}"


class LocalExecutor:
    """``workers`` processes on this machine; runs in-process when ``workers`` is 1.

    A worker killed from outside (out of memory, SIGKILL) breaks Python's
    process pool and with it every call in flight. Only the call whose worker
    was killed is reported :class:`Lost` (with the signal); the pool is
    rebuilt and the other unfinished calls run again.
    """

    name = "local"

    def __init__(self, workers: int, gpus: int | None = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count()
        self.gpus = gpus

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple],
            on_poll: Callable[[], None] | None = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(*calls[index]))`` in the order calls finish (``on_poll`` is unused here)."""
        if self.workers == 1 or len(calls) <= 1:
            _init_worker()
            for index, args in enumerate(calls):
                yield index, fn(*args)
            return
        context = multiprocessing.get_context("spawn")
        remaining = dict(enumerate(calls))
        while remaining:
            yield from self._one_pool(context, fn, remaining)

    def _gpu_ids(self, context: Any) -> Any:
        """A queue of one GPU id per worker of a new pool (round robin), or None on CPU.

        Each pool needs its own: its workers take every id at start-up, so a pool rebuilt after a worker
        died would otherwise wait forever for an id.
        """
        if not self.gpus:
            return None
        gpu_ids = context.Queue()
        for worker in range(self.workers):
            gpu_ids.put(worker % self.gpus)
        return gpu_ids

    def _one_pool(self, context: Any, fn: Callable[..., Any],
                  remaining: dict[int, tuple]) -> Iterator[tuple[int, Any]]:
        """Run ``remaining`` (index -> args) on one pool until they finish or a worker dies; removes what ended."""
        started, gpu_ids = context.Queue(), self._gpu_ids(context)
        with futures.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                         initargs=(gpu_ids, True, started)) as pool:
            pending = {pool.submit(_tracked, fn, index, *args): index for index, args in remaining.items()}
            processes = dict(getattr(pool, "_processes", None) or {})  # pid -> Process, to read exit codes
            broken = False
            try:
                for done in futures.as_completed(pending):
                    try:
                        outcome = done.result()
                    except futures.process.BrokenProcessPool:
                        broken = True
                        continue
                    remaining.pop(pending[done])
                    yield pending[done], outcome
            except (KeyboardInterrupt, GeneratorExit):
                # interrupted: stop the workers now rather than wait for their runs (their locks go
                # stale with them; each run resumes from its last checkpoint next time)
                workers = list(getattr(pool, "_processes", {}).values())
                for process in workers:
                    process.terminate()
                for process in workers:
                    process.join(timeout=10)
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if broken:
            yield from self._lost(started, processes, remaining)

    @staticmethod
    def _lost(started: Any, processes: dict[int, Any], remaining: dict[int, tuple]) -> Iterator[tuple[int, Any]]:
        """After a pool broke: the calls whose worker was killed from outside are lost; the rest stay to rerun."""
        import queue
        import signal

        running: dict[int, int] = {}  # pid -> the last call it started
        while True:
            try:
                index, pid = started.get(timeout=0.5)
            except queue.Empty:
                break
            running[pid] = index
        for process in processes.values():
            process.join(timeout=10)
        # the pool terminates its other workers itself (SIGTERM) once one dies; any other ending is the cause
        culprits = {pid: p.exitcode for pid, p in processes.items()
                    if p.exitcode not in (0, None, -signal.SIGTERM) and running.get(pid) in remaining}
        if not culprits:  # only SIGTERMs: someone terminated a worker from outside
            culprits = {pid: p.exitcode for pid, p in processes.items() if running.get(pid) in remaining}
        for pid, exitcode in culprits.items():
            index = running[pid]
            remaining.pop(index)
            yield index, Lost(f"worker died: {_signal_name(exitcode)}")


def _threaded(fn: Callable[..., Any], threads: int, *args: Any) -> Any:
    """Runs inside a submitit job: set torch's thread count, then call ``fn``."""
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


# submitit waits up to 15 s for a finished job's result file to show on a slow shared file system; a local job
# writes it on this machine, so one that died is known lost after this many seconds
LOCAL_RESULT_WAIT_S = 1


class SubmititExecutor:
    """One submitit job per call: SLURM array jobs, or submitit's local executor.

    ``folder`` holds submitit's job files and logs (``%j`` is the job id).
    ``workers`` bounds how many jobs run at once (SLURM's array parallelism).
    """

    def __init__(self, cluster: str, folder: str | os.PathLike, *, workers: int, partition: str | None = None,
                 time_min: int = 60, gpus_per_job: int = 0, cpus_per_job: int = 1, poll_seconds: float = 1.0):
        if cluster not in ("slurm", "local"):
            raise ValueError(f"cluster must be slurm or local, got {cluster!r}")
        if workers < 1 or time_min < 1 or gpus_per_job < 0 or cpus_per_job < 1:
            raise ValueError(f"need workers >= 1, time_min >= 1, gpus_per_job >= 0, cpus_per_job >= 1; got "
                             f"{workers}, {time_min}, {gpus_per_job}, {cpus_per_job}")
        import submitit

        self.name = "slurm" if cluster == "slurm" else "submitit-local"
        self.cluster, self.workers, self.poll_seconds = cluster, workers, poll_seconds
        self.gpus_per_job, self.cpus_per_job = gpus_per_job, cpus_per_job
        self.folder = Path(folder)
        if cluster == "slurm":
            if shutil.which("srun") is None:
                raise RuntimeError("--executor slurm needs SLURM's srun and sbatch on PATH (run it on a login node "
                                   "of the cluster); use --executor local or submitit-local on this machine")
            self.executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
            self.executor.update_parameters(timeout_min=time_min, gpus_per_node=gpus_per_job,
                                            cpus_per_task=cpus_per_job, slurm_array_parallelism=workers,
                                            **({"slurm_partition": partition} if partition else {}))
        else:
            self.executor = submitit.LocalExecutor(folder=self.folder / "%j")
            self.executor.update_parameters(timeout_min=time_min, gpus_per_node=gpus_per_job)

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_job else "cpu"

    def submit_array(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> list[Any]:
        """Submit every call as one SLURM array job (``sbatch``); returns submitit's jobs."""
        return self.executor.map_array(_threaded, *zip(*[(fn, self.cpus_per_job, *args) for args in calls]))

    def _result(self, job: Any) -> Any:
        try:
            return job.result()
        except Exception as error:  # noqa: BLE001 - submitit raises its own types for every way a job can end
            return Lost(f"job {job.job_id} ended without a result: {type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''} (logs in {self.folder})")

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple],
            on_poll: Callable[[], None] | None = None) -> Iterator[tuple[int, Any]]:
        """As :meth:`LocalExecutor.map`; ``on_poll`` is called on every poll that found nothing finished."""
        threads = self.cpus_per_job
        if self.cluster == "slurm":  # the scheduler bounds concurrency through the array
            queue: list[int] = []
            running = dict(enumerate(self.submit_array(fn, calls)))
        else:  # submitit's local executor starts every job at once: keep at most ``workers`` in flight
            queue, running = list(range(len(calls))), {}
        while queue or running:
            while queue and len(running) < self.workers:
                index = queue.pop(0)
                running[index] = job = self.executor.submit(_threaded, fn, threads, *calls[index])
                job._results_timeout_s = LOCAL_RESULT_WAIT_S
            finished = [index for index, job in running.items() if job.done()]
            for index in finished:
                yield index, self._result(running.pop(index))
            if not finished:
                if on_poll is not None:
                    on_poll()
                time.sleep(self.poll_seconds)


def default_job_folder() -> Path:
    """Where submitit's job files go unless told: ``$SUBMITIT_DIR``, else a folder of this user's under
    ``~/.cache`` (a home folder is on the file system a cluster's nodes share)."""
    if os.environ.get("SUBMITIT_DIR"):
        return Path(os.environ["SUBMITIT_DIR"])
    return Path.home() / ".cache" / "attention-normalisation" / "submitit"


def private_job_folder(folder: str | os.PathLike, results: str | os.PathLike) -> Path:
    """``folder``, created 0700 if missing, checked to be this user's alone and outside ``results``.

    submitit unpickles a job's result file from its job folder when the job ends: anyone who can write
    there can run code in the sweep. A results folder is meant to be shared, so job folders stay out of it,
    in a folder no one else can write. Raises ValueError naming the problem otherwise.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.resolve().is_relative_to(Path(results).resolve()):
        raise ValueError(f"--submitit-dir {folder} is inside the results folder {results}: job folders hold files "
                         "the sweep unpickles, so keep them where only you can write (default "
                         f"{default_job_folder()}, or $SUBMITIT_DIR)")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as error:
        raise ValueError(f"job folder {folder} cannot be created ({error.strerror})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"job folder {folder} is not a folder (a link or a file): choose another --submitit-dir")
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ValueError(f"job folder {folder} is not yours alone (owner uid {info.st_uid}, mode "
                         f"{stat.S_IMODE(info.st_mode):o}): others could plant files the sweep unpickles; "
                         f"chmod 700 it or choose another --submitit-dir")
    return folder


def make_executor(name: str, *, workers: int, folder: str | os.PathLike, partition: str | None = None,
                  time_min: int = 60, gpus_per_job: int = 0, cpus_per_job: int = 1):
    """The executor called ``name`` (one of :data:`EXECUTORS`)."""
    if name == "local":
        return LocalExecutor(workers)
    if name in ("slurm", "submitit-local"):
        return SubmititExecutor("slurm" if name == "slurm" else "local", folder, workers=workers,
                                partition=partition, time_min=time_min, gpus_per_job=gpus_per_job,
                                cpus_per_job=cpus_per_job)
    raise ValueError(f"unknown executor {name!r}; valid executors are {list(EXECUTORS)}")
