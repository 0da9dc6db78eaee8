"""Figure: best-head AER of cross-attention and test accuracy, per reordering and training setting (R7, R3).

    python -m paper_figs.plot_alignment_aer alignment_aer.csv alignment_aer.png

A bar is the mean over seeds with the seeds' range; the recipe's and the authors' setting (post-LN, unit-scaling
init) are grouped apart where both were run.
"""

import sys

import numpy as np

from paper_figs._plot import chance_line, color, group, main, mean_range, plt, save, title, value, variant
from paper_figs._rows import setting


def plot(rows, out):
    cells = list(dict.fromkeys((r["task.reordering"], setting(r)) for r in rows))
    both = len({where for _, where in cells}) > 1
    labels = [f"{order}\n({where})" if both else order for order, where in cells]
    names = list(dict.fromkeys(variant(r) for r in rows))
    groups = group(rows, variant, "task.reordering", setting)
    fig, axes = plt.subplots(1, 2, figsize=(9 + 2 * both, 3.2))
    width = 0.8 / len(names)
    for column, ax, label in (("aer", axes[0], "best-head AER (lower is better)"),
                              ("test_accuracy", axes[1], "test accuracy")):
        for i, name in enumerate(names):
            stats = [mean_range([value(r, column) for r in groups.get((name, *cell), [])] or [float("nan")])
                     for cell in cells]
            ax.bar(np.arange(len(cells)) + (i - (len(names) - 1) / 2) * width, [m for m, _, _ in stats], width,
                   yerr=[[lo for _, lo, _ in stats], [hi for _, _, hi in stats]], capsize=2,
                   color=color(name), label=name)
        ax.set_xticks(range(len(cells)), labels)
        ax.set_ylabel(label)
    chance_line(axes[1], rows)
    axes[0].legend(fontsize=7)
    title(axes[0], "alignment", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
