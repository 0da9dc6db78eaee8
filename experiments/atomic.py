"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the project writes goes through :func:`atomic_path` (a run's lock
through :func:`no_space_in` as well), so a full disk is reported in one
place: as :class:`NoSpace`, naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left on the device, or none left in the user's quota


class NoSpace(OSError):
    """A write failed because the disk (or the quota) holding ``folder`` is full: ``no space left in <folder>``."""

    def __init__(self, folder: str | os.PathLike):
        super().__init__(errno.ENOSPC, f"no space left in {folder}")
        self.folder = Path(folder)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # OSError pickles its (errno, strerror); a worker process sends this one back whole
        return NoSpace, (self.folder,)


@contextlib.contextmanager
def no_space_in(folder: str | os.PathLike) -> Iterator[None]:
    """Raise :class:`NoSpace` naming ``folder`` for a write inside the block that fails for want of space."""
    try:
        yield
    except NoSpace:
        raise
    except OSError as error:
        if error.errno in FULL:
            raise NoSpace(folder) from error
        raise


def why(error: OSError) -> str:
    """One line for a write that failed: ``no space left in <folder>``, or the file and the system's reason."""
    if isinstance(error, NoSpace):
        return str(error)
    path = error.filename2 or error.filename  # os.replace names its target second
    return f"{path}: {error.strerror}" if path is not None and error.strerror else str(error)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file keeps ``path``'s suffix so writers that infer a format
    from the name (matplotlib) still work. On error it is removed and ``path``
    is left untouched; a full disk raises :class:`NoSpace`.
    """
    path = Path(path)
    with no_space_in(path.parent):
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
