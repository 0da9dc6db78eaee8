"""Reading a file from a folder that other people can write to (a shared results folder).

A name in such a folder may be a symlink to anything on the machine (a
credentials file, ``/dev/zero``), a FIFO that blocks whoever opens it, or a
file of any size. :func:`read_bytes` reads only a regular file whose real
path lies inside the folder, opened without following a final symlink and
without blocking, up to a size limit; anything else raises
:class:`Untrusted` (a ``ValueError``) naming the problem, for the caller to
set aside or skip.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_BYTES = 64 * 2**20  # far above any result the project writes (a few hundred KiB)


class Untrusted(ValueError):
    """A file that is not safe to read as the caller expects."""


def read_bytes(path: str | os.PathLike | None, *, root: str | os.PathLike, limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``path``, a regular file inside ``root`` of at most ``limit`` bytes."""
    if path is None:
        raise Untrusted("no file named")
    path = Path(path)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise Untrusted(f"{path} cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if not real.is_relative_to(Path(root).resolve()):
        raise Untrusted(f"{path} leads outside {root} (to {real})")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:  # ELOOP: the name itself is a symlink
        raise Untrusted(f"{path} is not a plain file ({error.strerror})") from None
    try:  # checked on the descriptor before any file object: Python refuses to make one of a folder
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise Untrusted(f"{path} is not a plain file (a FIFO, device or folder)")
        if info.st_size > limit:
            raise Untrusted(f"{path} holds {info.st_size} bytes, more than the {limit} a result may")
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as error:  # EIO and the like: a file that cannot be read is no result either
        raise Untrusted(f"{path} cannot be read ({error.strerror})") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise Untrusted(f"{path} grew past {limit} bytes while being read")
    return data


def read_json(path: str | os.PathLike | None, *, root: str | os.PathLike, limit: int = MAX_BYTES) -> Any:
    """:func:`read_bytes`, parsed as UTF-8 JSON (nesting too deep for the parser is an :class:`Untrusted` too)."""
    data = read_bytes(path, root=root, limit=limit)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise Untrusted(f"{path} is not JSON ({error})") from None
    except RecursionError:
        raise Untrusted(f"{path} nests deeper than a result can") from None
