"""Helpers the theory notebooks share: run mode, Monte Carlo checks, figures, verdicts.

``THEORY_FAST=1`` selects the fast mode (smaller Monte Carlo, used by the
tests); the full mode runs in ``make all``. ``THEORY_OUT`` is the folder for
figures and verdict files (default ``paper_figs/theory``). Every check is an
``assert`` whose tolerance comes from the standard error of the estimate
(``Z`` standard errors) plus, where a claim is asymptotic, the size of the
next-order term, stated next to the check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from experiments.atomic import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent

FAST = os.environ.get("THEORY_FAST") == "1"
OUT = Path(os.environ.get("THEORY_OUT", ROOT / "paper_figs" / "theory"))
Z = 5.0  # standard errors allowed in a Monte Carlo check: a false alarm has probability < 1e-6

_verdicts: list[dict] = []


def size(full: int, fast: int) -> int:
    """A Monte Carlo sample size for the current mode."""
    return fast if FAST else full


def mc_mean(samples) -> tuple[float, float]:
    """Mean and its standard error."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    return float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(samples.size))


def check_mean(samples, expected: float, what: str, *, extra: float = 0.0) -> float:
    """Assert the sample mean is within ``Z`` standard errors (+ ``extra``) of ``expected``."""
    mean, stderr = mc_mean(samples)
    tolerance = Z * stderr + extra
    assert abs(mean - expected) <= tolerance, (
        f"{what}: Monte Carlo mean {mean:.6g} differs from {expected:.6g} by {abs(mean - expected):.3g} "
        f"> {tolerance:.3g} ({Z:g} standard errors {stderr:.3g} + {extra:.3g})")
    print(f"ok  {what}: {mean:.6g} vs {expected:.6g} (tolerance {tolerance:.2g})")
    return mean


def check(condition: bool, what: str) -> None:
    assert condition, what
    print(f"ok  {what}")


def record(claim: str, statement: str, ours: str, holds: bool) -> None:
    """One verdict for the claims ledger: the claim id, what was checked, our number, whether it held."""
    _verdicts.append({"claim": claim, "statement": statement, "ours": ours, "holds": bool(holds),
                      "mode": "fast" if FAST else "full"})


def write_verdicts(notebook: str) -> Path:
    path = OUT / "verdicts" / f"{notebook}.json"
    atomic_write_text(path, json.dumps(_verdicts, indent=1) + "\n")
    return path


def savefig(fig, name: str) -> Path:
    path = OUT / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    return path
