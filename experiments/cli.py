"""The argument parser every command of the project uses: a refusal is one line.

argparse prints its whole usage block before an error; a user who typed one
wrong value wants the one line that names it (and the valid choices), so the
usage stays behind ``--help``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are ``prog: error: message`` on one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        if len(line) > MAX_ERROR_CHARS:  # a value of a million elements is named, not echoed
            line = line[:MAX_ERROR_CHARS] + f" ... ({len(line)} characters in all)"
        self.exit(2, f"{self.prog}: error: {line} (see --help)\n")


MAX_ERROR_CHARS = 600  # the longest refusal a terminal is shown in full


def lock_seconds(text: str) -> float:
    """``--lock-timeout``: seconds in [0, 1e7] (a wait past that is a typo, and inf or nan no bound at all)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 <= value <= 1e7:
        raise argparse.ArgumentTypeError(f"must be in [0, 1e7] seconds, got {text}")
    return value
