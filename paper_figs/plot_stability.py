"""Figure: final MQAR accuracy of the ReLU family per setting, length and learning rate; a cross marks a diverged
run, the number over a bar how many seeds learned (R2, S4).

    python -m paper_figs.plot_stability stability.csv stability.png
"""

import sys

import numpy as np

from paper_figs._plot import chance_line, color, group, main, plt, save, title, value, variant
from paper_figs._rows import setting


def cell(row) -> tuple[str, int, float]:
    return setting(row), int(row["task.seq_len"]), float(row["train.lr"])


def plot(rows, out):
    cells = sorted({cell(r) for r in rows}, key=lambda c: (c[0] != "paper", c[1], c[2]))
    names = list(dict.fromkeys(variant(r) for r in rows))
    fig, ax = plt.subplots(figsize=(max(7.6, 1.6 * len(cells)), 3.6))
    width = 0.8 / len(names)
    groups = group(rows, variant, cell)
    for i, name in enumerate(names):
        for j, key in enumerate(cells):
            runs = groups.get((name, key), [])
            if not runs:
                continue
            accs = [value(r, "test_accuracy") for r in runs]
            x = j + (i - (len(names) - 1) / 2) * width
            ax.bar(x, np.mean(accs), width, color=color(name), label=name if name not in
                   ax.get_legend_handles_labels()[1] else None,
                   yerr=[[np.mean(accs) - min(accs)], [max(accs) - np.mean(accs)]] if len(accs) > 1 else None)
            ax.annotate(f"{sum(r['learned'] == '1' for r in runs)}/{len(runs)}", (x, min(1.0, max(accs)) + 0.02),
                        ha="center", fontsize=5)
            diverged = sum(r["status"] == "diverged" for r in runs)
            if diverged:
                ax.plot(x, 0.02, "kx")
    labels = {"paper": "post-LN, unit init", "recipe": "pre-LN, GPT-2 init"}
    ax.set_xticks(range(len(cells)), [f"{labels[s]}\nn={n}, lr {lr:g}" for s, n, lr in cells], fontsize=7)
    chance_line(ax, rows)
    ax.set_ylabel("MQAR test accuracy")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    title(ax, "ReLU family stability (k/n: seeds learned; x: diverged)", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
