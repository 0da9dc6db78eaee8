"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file keeps ``path``'s suffix so writers that infer a format
    from the name (matplotlib) still work. On error it is removed and ``path``
    is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def quarantine(path: str | os.PathLike, reason: str) -> Path | None:
    """Move a file (or folder) that cannot be trusted aside, to ``<name>.corrupt-<time>``, with one warning.

    Returns the new path, or None if it vanished meanwhile (another runner moved it first).
    """
    import sys
    import time

    path = Path(path)
    stem = f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    target, count = path.with_name(stem), 0
    while os.path.lexists(target):  # set aside twice in one second: never onto the first
        count += 1
        target = path.with_name(f"{stem}-{count}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    print(f"warning: {path} {reason}; moved aside to {target.name}", file=sys.stderr)
    return target
