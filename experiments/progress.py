"""Whole-sweep progress read from the result cache (done, running, failed, ETA), whichever executor runs it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from experiments.cache import holder_alive, run_files
from experiments.runs import RunConfig


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def state_counts(files: Iterable[tuple[str, Path, Path, Path]], lost: set[str] = frozenset()) -> dict[str, int]:
    """done / running / failed / total over ``(key, result, lock, failure)`` paths, read one at a time.

    done: a result file exists; running: a lock whose holder is alive; failed:
    a failure record, or a key in ``lost`` (a worker lost in this session). A
    folder planted at a result or failure path is neither (the run moves it aside).
    """
    done = running = failed = total = 0
    for key, path, lock, failure in files:
        total += 1
        if path.is_file():
            done += 1
        elif lock.exists() and holder_alive(lock):
            running += 1
        elif failure.is_file() or key in lost:
            failed += 1
    return {"done": done, "running": running, "failed": failed, "total": total}


class Progress:
    """Whole-sweep progress read from the result cache, whichever executor runs the sweep.

    done: a result file exists; running: a lock whose holder is alive;
    failed: a failure record, or a worker lost in this session; ETA from the
    rate at which runs finished since this runner started.
    """

    def __init__(self, configs: list[RunConfig], root: str | None, clock=time.monotonic):
        self.configs, self.root, self.clock = configs, root, clock
        # keys and paths once: counts() runs after every finished run, and hashing configs is not free
        self.files = [run_files(c, root) for c in configs]
        self.started, self.lost = clock(), set()
        self.done_at_start = self.counts()["done"]

    def counts(self) -> dict[str, int]:
        return state_counts(self.files, self.lost)

    def line(self) -> str:
        c = self.counts()
        remaining = c["total"] - c["done"] - c["failed"]
        finished = c["done"] - self.done_at_start
        elapsed = self.clock() - self.started
        if remaining == 0:
            eta = "0s"
        elif finished > 0:
            eta = _duration(remaining * elapsed / finished)
        else:
            eta = "?"
        return counts_line(c, eta)


def counts_line(c: dict[str, int], eta: str) -> str:
    return f"[{c['done']}/{c['total']} done, {c['running']} running, {c['failed']} failed, ETA {eta}]"


class Throttle:
    """Calls ``action`` at most once every ``seconds``."""

    def __init__(self, action, seconds: float):
        self.action, self.seconds, self.last = action, seconds, time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last >= self.seconds:
            self.last = time.monotonic()
            self.action()
