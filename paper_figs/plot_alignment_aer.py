"""Figure: best-head AER of cross-attention per reordering, and test accuracy (R7, R3).

    python -m paper_figs.plot_alignment_aer alignment_aer.csv alignment_aer.png
"""

import sys

import numpy as np

from paper_figs._plot import chance_line, color, group, main, mean_range, plt, save, title, value, variant


def plot(rows, out):
    orders = list(dict.fromkeys(r["task.reordering"] for r in rows))
    names = list(dict.fromkeys(variant(r) for r in rows))
    groups = group(rows, variant, "task.reordering")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / len(names)
    for column, ax, label in (("aer", axes[0], "best-head AER (lower is better)"),
                              ("test_accuracy", axes[1], "test accuracy")):
        for i, name in enumerate(names):
            stats = [mean_range([value(r, column) for r in groups[(name, o)]]) for o in orders]
            ax.bar(np.arange(len(orders)) + (i - (len(names) - 1) / 2) * width, [m for m, _, _ in stats], width,
                   yerr=[[lo for _, lo, _ in stats], [hi for _, _, hi in stats]], capsize=2,
                   color=color(name), label=name)
        ax.set_xticks(range(len(orders)), orders)
        ax.set_ylabel(label)
    chance_line(axes[1], rows)
    axes[0].legend(fontsize=7)
    title(axes[0], "alignment", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
