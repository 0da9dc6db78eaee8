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
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")
