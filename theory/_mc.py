"""Helpers the theory notebooks share: run mode, Monte Carlo checks, figures, verdicts.

``THEORY_FAST=1`` selects the fast mode (smaller Monte Carlo, used by the
tests); the full mode runs in ``make all``. ``THEORY_OUT`` is the folder for
figures and verdict files (default ``paper_figs/theory``). Every check is a
comparison (:func:`check`, :func:`check_mean`) whose tolerance comes from the
standard error of the estimate (``Z`` standard errors) plus, where a claim is
asymptotic, the size of the next-order term, stated next to the check; a
claim's verdict (:func:`record`) is computed from the checks made for it, so a
check that fails makes the claim ``not reproduced`` in the ledger, not a
crashed notebook; its ``ours`` text is formatted from the numbers those checks
measured. :func:`show` typesets a derived result in a notebook and prints it in
a script run.
"""

from __future__ import annotations

import json
import os
import sys
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


_pending: list[tuple[str, bool]] = []  # the checks since the last record: (what, held)


def check_mean(samples, expected: float, what: str, *, extra: float = 0.0) -> float:
    """Check the sample mean is within ``Z`` standard errors (+ ``extra``) of ``expected``; returns the mean."""
    mean, stderr = mc_mean(samples)
    tolerance = Z * stderr + extra
    check(abs(mean - expected) <= tolerance,
          f"{what}: Monte Carlo mean {mean:.6g} vs {expected:.6g}, difference {abs(mean - expected):.3g}, "
          f"tolerance {tolerance:.3g} ({Z:g} standard errors {stderr:.3g} + {extra:.3g})")
    return mean


def check(condition: bool, what: str) -> bool:
    """One check of a claim: printed as ``ok`` or ``FAILED``, and counted by the next :func:`record`.

    A failed check does not stop the notebook: the claim it belongs to is
    recorded as not holding, and the ledger says ``not reproduced``.
    """
    held = bool(condition)
    _pending.append((what, held))
    print(f"{'ok    ' if held else 'FAILED'}  {what}")
    return held


def record(claim: str, statement: str, ours: str) -> bool:
    """One verdict for the claims ledger: the claim id, what was checked, our numbers, and whether it held,
    computed from the checks made since the previous record; each record needs checks of its own.
    Returns whether it held."""
    global _pending
    checks, _pending = _pending, []
    if not checks:
        raise RuntimeError(f"record({claim!r}) rests on no check of its own: call check() or check_mean() first")
    failed = [what for what, held in checks if not held]
    _verdicts.append({"claim": claim, "statement": statement, "ours": ours, "holds": not failed,
                      "checks": len(checks), "failed": failed, "mode": "fast" if FAST else "full"})
    return not failed


def relative_error(measured: float, expected: float) -> float:
    return abs(measured - expected) / abs(expected)


def show(text: str, value, *, tex: str | None = None) -> None:
    """A derived result ``text = value``: typeset in a notebook (LaTeX ``tex``, by default ``text``, and
    the value through ``sympy.latex``), plain text when the notebook runs as a script."""
    plain = f"{text} = {value}"
    ipython = sys.modules.get("IPython")
    if ipython is None or getattr(ipython.get_ipython(), "kernel", None) is None:
        print(plain)
        return
    import sympy
    from IPython.display import display

    latex = f"$\\displaystyle {text if tex is None else tex} = {sympy.latex(value)}$"
    display({"text/latex": latex, "text/plain": plain}, raw=True)


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
