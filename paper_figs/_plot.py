"""What the plot scripts share: reading a sweep CSV, a fixed colour per variant, atomic saving."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments import attention  # noqa: E402
from experiments.io import atomic_path  # noqa: E402

_NAMES = attention.names() + ["reluformer+reg"]
COLORS = {name: matplotlib.colors.to_hex(plt.cm.tab20(i / 20)) for i, name in enumerate(sorted(_NAMES))}
COLORS.update({"softmax": "tab:blue", "linear": "tab:orange", "rela_g": "tab:green"})


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


def title(ax, text: str, rows) -> None:
    seeds = len({r.get("train.seed") for r in rows})
    ax.set_title(f"{text} ({rows[0].get('profile', '?')} profile, {seeds} seed{'s' if seeds > 1 else ''})",
                 fontsize=9)


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
