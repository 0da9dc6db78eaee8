"""The result cache: where a run's files live, results read back defensively, locks with heartbeats, failures.

Results are content-addressed: the file name is a prefix of the run config's
key (a hash of the config with its device resolved, see
:meth:`experiments.runs.RunConfig.key`). Layout, under ``results_dir``::

    <task>/<key[:16]>.json          the result (written atomically once a run ends)
    <task>/<key[:16]>.safetensors   its final weights, named in the result by size and SHA-256
    <task>/<key[:16]>.ckpt          the checkpoint an interrupted run resumes from
    <task>/<key[:16]>.lock          "host pid" of the runner doing it, refreshed every 30 s
    <task>/<key[:16]>.failed.json   the traceback of a run that raised (never read as a result)

``results_dir`` is the argument, else ``$RESULTS_DIR``, else ``results/``
under the current folder. Everything here is untrusted input: a file of the wrong shape
is moved aside (``<name>.corrupt-<time>``), a lock that cannot be trusted
goes stale. The functions take any config with ``key()``, ``task_name``,
``run_id()`` and ``to_dict()``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy
import torch

from experiments import untrusted, weights
from experiments.atomic import atomic_write_text, no_space_in, quarantine
from experiments.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def check_results_dir(override: str | os.PathLike | None) -> Path:
    """The results folder, created if missing; ConfigError if it is empty, not a folder or not writable."""
    if override is not None and str(override).strip() == "":
        raise ConfigError("--results-dir is empty; give a folder (default: $RESULTS_DIR or results/)")
    path = results_dir(override)
    _writable_folder(path, "results folder")
    return path


def _writable_folder(path: Path, what: str) -> None:
    """Create ``path`` if missing; ConfigError (one line naming ``what``) if it is not a folder or cannot be
    created or written."""
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(f"{what} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be created ({error.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} is not writable")


def results_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$RESULTS_DIR``, else ``results/`` under the current folder (never inside the
    installed package)."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get("RESULTS_DIR", "results"))


def run_files(config: Any, root: str | os.PathLike | None = None) -> tuple[str, Path, Path, Path]:
    """``(key, result, lock, failure record)`` of a run: the layout above, from one hash of the config."""
    key = config.key()
    result = results_dir(root) / config.task_name / f"{key[:16]}.json"
    return key, result, result.with_suffix(".lock"), result.with_suffix(".failed.json")


def result_path(config: Any, root: str | os.PathLike | None = None) -> Path:
    return run_files(config, root)[1]


REQUIRED_FIELDS = {"key": str, "config": dict, "status": str, "final": dict, "curve": list}
RESULT_STATUSES = ("finished", "reached_target", "plateaued", "diverged")


def load_result(config: Any, root: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The cached result of ``config``, or None if it has not been run.

    Anything at the result path that is not a result of the right shape (not
    JSON, truncated by a crash that bypassed the atomic write, a JSON list, a
    field of the wrong type, a folder, a symlink, a FIFO, a file too large or
    nested too deep, edited by hand, beside a weights file that is not the one
    it names) is moved aside to ``<name>.corrupt-<time>`` with one warning, and
    the run is done again.
    """
    path = result_path(config, root)
    if not os.path.lexists(path):
        return None
    try:
        return checked_result(config, root)
    except (OSError, ValueError) as error:  # OSError: a folder or an unreadable file; ValueError: not a result
        quarantine(path, f"is not a result ({error}); the run will be redone")
        if os.path.lexists(path.with_suffix(weights.SUFFIX)):
            quarantine(path.with_suffix(weights.SUFFIX), "belongs to a result set aside; the run will be redone")
        return None


def checked_result(config: Any, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The result of ``config`` if the file at its place is one, with the weights it names; raises (OSError
    or ValueError, naming the problem) otherwise, moving nothing."""
    path = result_path(config, root)
    result = untrusted.read_json(path, root=results_dir(root))  # no FIFO, link, device or huge file
    if not isinstance(result, dict):
        raise ValueError(f"holds a JSON {type(result).__name__}, not an object")
    wrong = [f"{f} ({kind.__name__} expected)" for f, kind in REQUIRED_FIELDS.items()
             if not isinstance(result.get(f), kind)]
    if wrong:
        raise ValueError(f"missing or mistyped fields {wrong}")
    if result["key"] != config.key() or not config.same_run(result["config"]):
        raise ValueError(f"holds the result of another config (key {result['key'][:16]!r})")
    if result["status"] not in RESULT_STATUSES:
        raise ValueError(f"status {result['status'][:40]!r} is none of {list(RESULT_STATUSES)}")
    kept = path.with_suffix(weights.SUFFIX)
    if "weights" in result and os.path.lexists(kept):  # the kept weights it names: the very file, or redone
        weights.verify(result, kept, results_dir(root))
    return result


def check_task_folder(config: Any, root: str | os.PathLike | None = None) -> None:
    """Refuse (ConfigError, one line) a run whose task folder in the results folder is a file or cannot be
    created or written: found before training, not when the result is saved."""
    _writable_folder(result_path(config, root).parent, "task folder")


def failure_path(config: Any, root: str | os.PathLike | None = None) -> Path:
    """Where a run that raised leaves its traceback (never read as a cached result)."""
    return run_files(config, root)[3]


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if revision else None
    return {"revision": revision, "dirty": bool(status) if status is not None else None}


def versions() -> dict[str, str]:
    import scipy
    import tqdm

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "tqdm": tqdm.__version__,
        "platform": platform.platform(),
    }


class Locked(Exception):
    """Another live process holds the run's lock (raised only when not waiting)."""


class LockTimeout(RuntimeError):
    """Waited longer than the lock timeout for another runner's lock."""


def lock_path(config: Any, root) -> Path:
    return run_files(config, root)[2]


HEARTBEAT_SECONDS = 30.0  # a lock's holder refreshes its mtime this often
STALE_AFTER_SECONDS = 300.0  # a lock not refreshed for this long is stale, whoever it names
WAIT_REPORT_SECONDS = 60.0  # while waiting for a lock, say who holds it this often


def read_lock(path: Path) -> tuple[str | None, int | None, float]:
    """``(host, pid, age in seconds)`` of a lock file; host and pid are None if it does not parse.

    Raises FileNotFoundError if the lock is gone.
    """
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        raise
    except OSError:  # a link loop or the like: no lock anyone wrote (acquire() writes a plain file)
        return None, None, 0.0
    try:  # a plain file of at most 200 bytes: a FIFO there would block the read, a huge file would be read whole
        parts = untrusted.read_bytes(path, root=path.parent, limit=200).decode("utf-8", "replace").split()
    except untrusted.Untrusted:
        parts = []
    if len(parts) == 2 and parts[1].isdecimal() and len(parts[1]) <= 9:
        return parts[0], int(parts[1]), age
    return None, None, age


def holder_alive(path: Path) -> bool:
    """Whether the lock's holder (``host pid``) still runs.

    Every live holder refreshes the lock's mtime every
    :data:`HEARTBEAT_SECONDS`, so a lock not refreshed for
    :data:`STALE_AFTER_SECONDS` is stale whatever it says: one that does not
    parse (empty, garbage, half written), one from another host whose job
    died, or one naming a live process that is no runner (pid 1, a reused
    pid). On this host a pid that is gone, or this process's own pid (it runs
    one run at a time, so such a lock is a leftover), is stale at once.
    """
    try:
        host, pid, age = read_lock(path)
    except FileNotFoundError:
        return False
    fresh = -STALE_AFTER_SECONDS < age < STALE_AFTER_SECONDS  # a date far in the future is no heartbeat
    if host is None:
        return False  # acquire() never shows a lock before its content: an empty or garbled one is nobody's
    if host != platform.node():
        return fresh
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass
    return fresh


class Heartbeat(threading.Thread):
    """Touches a lock file every :data:`HEARTBEAT_SECONDS` until stopped."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.stopped = path, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return


def holder_line(lock: Path) -> str:
    try:
        host, pid, age = read_lock(lock)
    except FileNotFoundError:
        return "released"
    who = f"held by pid {pid} on {host}" if host is not None else "held (unreadable lock)"
    return f"{who}, last refreshed {age:.0f} s ago"


def acquire(path: Path) -> bool:
    """Take the lock if free or stale (its holder died); False if a live process holds it.

    The lock appears whole or not at all: its ``host pid`` is written to a
    private file first, which is then hard-linked to the lock's name (a link
    fails if the name exists, as ``O_EXCL`` does), so a full disk fails the
    write before any lock exists (:class:`~experiments.atomic.NoSpace`). A
    directory at the lock's path is moved aside with one warning.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if path.is_dir() and not path.is_symlink():
            quarantine(path, "is a directory where a lock file belongs")
            continue
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            with no_space_in(path.parent), os.fdopen(fd, "w") as handle:
                handle.write(f"{platform.node()} {os.getpid()}")
            os.link(tmp, path)
        except FileExistsError:
            if holder_alive(path):
                return False
            path.unlink(missing_ok=True)  # stale: the holder was killed mid-run
            continue
        finally:
            tmp.unlink(missing_ok=True)
        return True
    return False


def clear(path: Path) -> None:
    """Remove a file the cache owns (a failure record, a stale lock); a directory planted at its path is moved
    aside with one warning instead (unlinking it would raise, and a write onto it would fail)."""
    if path.is_dir() and not path.is_symlink():
        quarantine(path, "is a directory where a file of the result cache belongs")
    else:
        path.unlink(missing_ok=True)


def record_failure(config: Any, error: BaseException | str,
                   root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write a ``failed`` record with the traceback (or the cause, e.g. ``worker died: signal 9``) beside the
    cache; a rerun tries the run again. On a full disk nothing is written and
    :class:`~experiments.atomic.NoSpace` is raised: the caller reports the run in one line instead."""
    import traceback

    record = {
        "key": config.key(),
        "run_id": config.run_id(),
        "config": config.to_dict(),
        "status": "failed",
        "error": error if isinstance(error, str) else "".join(traceback.format_exception(error)),
        "versions": versions(),
        "git": git_revision(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    clear(failure_path(config, root))
    atomic_write_text(failure_path(config, root), json.dumps(record, indent=1) + "\n")
    return record
