"""Figure: MQAR test accuracy against the number of key-value pairs, one line per attention.

    python paper_figs/plot_mqar_pairs.py results.csv figure.png

Reads the CSV written by ``python -m experiments.sweep mqar_pairs``. Each point
is the mean over seeds, the bar the min..max; a run that diverged is drawn as
a cross at accuracy 0 (it has no final accuracy), and a run that stopped at its
step budget without reaching the target is drawn hollow, so a budget-limited
point is not mistaken for a converged one.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from experiments.io import atomic_path  # noqa: E402


COLORS = {"softmax": "tab:blue", "linear": "tab:orange", "rela_g": "tab:green"}  # the same in every figure


def load(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{path} has no rows")
    return rows


def plot(rows: list[dict[str, str]], out: str) -> None:
    by_variant: dict[str, dict[int, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_variant[row["model.attention.name"]][int(row["task.num_kv_pairs"])].append(row)

    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=150)
    for name in sorted(by_variant):
        pairs = sorted(by_variant[name])
        means, lows, highs, finished = [], [], [], []
        for n in pairs:
            runs = by_variant[name][n]
            accs = [float(r["test_accuracy"]) if r["status"] != "diverged" else 0.0 for r in runs]
            means.append(sum(accs) / len(accs))
            lows.append(min(accs))
            highs.append(max(accs))
            finished.append(all(r["status"] == "reached_target" for r in runs))
            for r in runs:
                if r["status"] == "diverged":
                    ax.plot(n, 0.0, "x", color="black")
        errors = [[m - lo for m, lo in zip(means, lows)], [hi - m for m, hi in zip(means, highs)]]
        color = COLORS.get(name)
        line = ax.errorbar(pairs, means, yerr=errors, capsize=3, label=name, color=color, zorder=2)
        color = line[0].get_color()
        for n, m, done in zip(pairs, means, finished):
            ax.plot(n, m, "o", markeredgecolor=color, markerfacecolor=color if done else "white", zorder=3)

    first = rows[0]
    seeds = len({r["train.seed"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({int(r["task.num_kv_pairs"]) for r in rows}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("key-value pairs")
    ax.set_ylabel("MQAR test accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"MQAR recall vs pairs ({first['profile']} profile)", fontsize=10)
    ax.text(0.01, 0.01, f"T={first['task.seq_len']} V={first['task.vocab_size']} d={first['model.d_model']} "
            f"h={first['model.num_heads']} steps<={first['train.steps']} seeds={seeds}; hollow: target not reached",
            transform=ax.transAxes, fontsize=6, color="gray")
    # K2: linear attention's state holds F = head_dim (elu+1) features per head; mark where N reaches it
    head_dim = int(first["model.d_model"]) // int(first["model.num_heads"])
    top = max(int(r["task.num_kv_pairs"]) for r in rows)
    if head_dim <= top:
        ax.axvline(head_dim, color="tab:orange", ls=":", lw=1)
        ax.annotate("linear feature dim", (head_dim, 0.9), rotation=90, fontsize=6, color="tab:orange")
    else:
        ax.text(0.99, 0.5, f"linear feature dim {head_dim} > {top} pairs", transform=ax.transAxes, ha="right",
                fontsize=6, color="tab:orange")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    plot(load(argv[0]), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
