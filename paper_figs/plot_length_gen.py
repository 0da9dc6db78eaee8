"""Figure: accuracy against test length after training at one length, per task (B2), and the trained
heads' attention sinks and null rows (B3).

    python -m paper_figs.plot_length_gen length_gen.csv length_gen.png
"""

import sys

import numpy as np

from paper_figs._plot import (chance_line, color, group, log_ticks, main, mean_range, plt, save, spread_line,
                              title, value, variant)
from paper_figs.claims_beyond import SINK_BASELINE, SINK_COLUMN, SINK_REMOVERS


def accuracy_by_length(ax, rows, task):
    rows = [r for r in rows if r["task.name"] == task]
    train_len = int(rows[0]["task.seq_len"])
    tests = sorted({int(c.split(".")[1]) for c in rows[0] if c.startswith("length.")})
    lengths = [train_len, *tests]
    columns = ["test_accuracy", *(f"length.{n}" for n in tests)]
    groups = group(rows, variant)
    for (name,), rs in groups.items():
        spread_line(ax, lengths, [[value(r, c) for r in rs] for c in columns], color=color(name), label=name,
                    markersize=3)
    chance_line(ax, rows)
    ax.axvspan(train_len * 0.9, train_len * 1.1, color="gray", alpha=0.15, lw=0)
    log_ticks(ax, lengths)
    ax.set(xlabel=f"test length (trained at {train_len}, shaded)", ylabel=f"{task} test accuracy", ylim=(0, 1.05))


def sinks(ax, rows):
    rows = [r for r in rows if r["task.name"] == "mqar"]
    groups = group(rows, variant)
    names = [n for n in (SINK_BASELINE, *SINK_REMOVERS, "rela_g") if (n,) in groups]
    length = int(rows[0]["task.seq_len"])
    for offset, (column, label, hatch) in enumerate(((SINK_COLUMN, "share on first token, most sink-like head",
                                                      None), ("attn.null_rate.mean", "all-zero rows", "//"))):
        stats = [mean_range(value(r, column) for r in groups[(n,)]) for n in names]
        ax.bar(np.arange(len(names)) + (offset - 0.5) * 0.38, [m for m, _, _ in stats], 0.38,
               yerr=[[lo for _, lo, _ in stats], [hi for _, _, hi in stats]], capsize=3, hatch=hatch,
               color=[color(n) for n in names], edgecolor="black", lw=0.5, label=label)
    ax.axhline(np.mean([1 / n for n in range(2, length + 1)]), color="gray", ls="--", lw=1,
               label="first-token share of a uniform row")
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set(ylabel="share of a row", ylim=(0, 1))
    ax.legend(fontsize=6)
    ax.set_title("B3: sinks and null rows (MQAR, trained length)", fontsize=8)


def plot(rows, out):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, task in zip(axes, ("mqar", "needle")):
        if any(r["task.name"] == task for r in rows):
            accuracy_by_length(ax, rows, task)
            ax.legend(fontsize=6, ncol=2)
            title(ax, f"B2: {task}", [r for r in rows if r["task.name"] == task])
    sinks(axes[2], rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
