"""Reading sweep CSVs: the helpers the plot scripts and the claims ledger share (no plotting here)."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path


REQUIRED_COLUMNS = ("model.attention.name",)  # every row's variant (variant()): every figure, claim and table reads it


def read_rows(path) -> list[dict[str, str]]:
    """A CSV's rows; ValueError (one line naming the file and the problem) for one that is not a plain
    UTF-8 CSV file with a header holding :data:`REQUIRED_COLUMNS`, rows of the header's width, and no row."""
    if Path(path).exists() and not Path(path).is_file():  # a folder, or a FIFO that would block the read
        raise ValueError(f"{path}: not a plain file")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: not a readable UTF-8 CSV ({str(error)[:120]})") from None
    if not columns or not rows:
        raise ValueError(f"{path}: no columns or no rows")
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(map(repr, missing))}; not a sweep CSV")
    if any(None in row or None in row.values() for row in rows):
        raise ValueError(f"{path}: a row has more or fewer cells than the header")
    return rows


def load(path: str) -> list[dict[str, str]]:
    """:func:`read_rows` for a plot script: a bad file stops it with one line, exit status 2."""
    try:
        return read_rows(path)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def value(row: dict[str, str], column: str) -> float:
    """A number; a diverged run's missing accuracy counts as 0, any other missing or non-numeric value as NaN."""
    text = row.get(column, "")
    if text in ("", None):
        return 0.0 if row.get("status") == "diverged" and column.startswith("test_") else float("nan")
    try:
        return float(text)
    except (TypeError, ValueError):  # a cell that is not a number (a planted or damaged CSV): no value
        return float("nan")


def variant(row: dict[str, str]) -> str:
    """The attention name, with two settings of a variant told apart: ReLUFormer with its row regularisers
    (``reluformer+reg<weight>``) and ReLA-i with gain 1 (``rmsnorm``: a plain RMSNorm over the heads)."""
    name = row["model.attention.name"]
    weight = float(row.get("model.attention.norm_loss_weight") or 0)
    if name == "reluformer" and weight > 0:
        return f"reluformer+reg{weight:g}"
    if name == "rela_i" and row.get("model.attention.gain_init") == "ones":
        return "rmsnorm"
    return name


def setting(row: dict[str, str]) -> str:
    """``paper`` for a run in the ReLA authors' training setting (post-LN, unit-scaling init), ``recipe``
    for the recall recipe's (pre-LN, GPT-2 init)."""
    paper = row.get("model.norm_placement") == "post" and row.get("model.init") == "unit_scaling"
    return "paper" if paper else "recipe"


def group(rows, *keys: str | Callable[[dict[str, str]], object]) -> dict[tuple, list[dict[str, str]]]:
    """Rows by a tuple of keys: column names or functions of a row."""
    out: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        out[tuple(k(row) if callable(k) else row[k] for k in keys)].append(row)
    return out
