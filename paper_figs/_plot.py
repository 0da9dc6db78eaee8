"""What the plot scripts share: reading a sweep CSV, a fixed colour per variant, atomic saving."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments import attention  # noqa: E402
from experiments.io import atomic_path  # noqa: E402

# One colour per variant, the same in every figure; variants added later fall back to grey.
COLORS = {
    "softmax": "#1f77b4", "softmax_ln": "#aec7e8", "linear": "#ff7f0e", "norm_linear": "#ffbb78",
    "inline": "#8c564b", "relu": "#d62728", "rela_g": "#2ca02c", "rela_i": "#98df8a", "relu_len": "#e377c2",
    "reluformer": "#9467bd", "reluformer+reg": "#c5b0d5", "sigmoid": "#17becf", "sparsemax": "#bcbd22",
    "entmax15": "#7f7f7f",
}


def load(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{path} has no rows")
    return rows


def value(row: dict[str, str], column: str) -> float:
    """A number; a diverged run's missing accuracy counts as 0, any other missing value as NaN."""
    text = row.get(column, "")
    if text == "":
        return 0.0 if row.get("status") == "diverged" and column.startswith("test_") else float("nan")
    return float(text)


def variant(row: dict[str, str]) -> str:
    name = row["model.attention.name"]
    if name == "reluformer" and float(row.get("model.attention.norm_loss_weight") or 0) > 0:
        return "reluformer+reg"
    return name


def group(rows, *keys) -> dict[tuple, list[dict[str, str]]]:
    out: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        out[tuple(k(row) if callable(k) else row[k] for k in keys)].append(row)
    return out


def mean_min_max(values: list[float]) -> tuple[float, float, float]:
    return sum(values) / len(values), min(values), max(values)


def caption(rows) -> str:
    seeds = len({r.get("train.seed") for r in rows})
    return f"{rows[0].get('profile', '?')} profile, {seeds} seed{'s' if seeds > 1 else ''}"


def title(ax, text: str, rows) -> None:
    ax.set_title(f"{text} ({caption(rows)})", fontsize=9)


def log_ticks(ax, values) -> None:
    """A log x axis labelled with exactly the values swept."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(values)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def save(fig, out: str) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=140)
    plt.close(fig)


def main(plot, argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: plot_<name>.py INPUT.csv OUTPUT.png", file=sys.stderr)
        return 2
    plot(load(argv[0]), argv[1])
    return 0
