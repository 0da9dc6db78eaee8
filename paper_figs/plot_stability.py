"""Figure: final MQAR accuracy of the ReLU family per learning rate; a cross marks a diverged run (R2, S4).

    python -m paper_figs.plot_stability stability.csv stability.png
"""

import sys

import numpy as np

from paper_figs._plot import chance_line, color, group, main, plt, save, title, value, variant


def plot(rows, out):
    lrs = sorted({float(r["train.lr"]) for r in rows})
    names = list(dict.fromkeys(variant(r) for r in rows))
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    width = 0.8 / len(names)
    groups = group(rows, variant, lambda r: float(r["train.lr"]))
    for i, name in enumerate(names):
        for j, lr in enumerate(lrs):
            runs = groups.get((name, lr), [])
            if not runs:
                continue
            accs = [value(r, "test_accuracy") for r in runs]
            x = j + (i - (len(names) - 1) / 2) * width
            ax.bar(x, np.mean(accs), width, color=color(name), label=name if j == 0 else None,
                   yerr=[[np.mean(accs) - min(accs)], [max(accs) - np.mean(accs)]] if len(accs) > 1 else None)
            diverged = sum(r["status"] == "diverged" for r in runs)
            if diverged:
                ax.plot(x, 0.02, "kx")
                ax.annotate(f"{diverged}/{len(runs)}", (x, 0.05), ha="center", fontsize=6)
    ax.set_xticks(range(len(lrs)), [f"lr {lr:g}" for lr in lrs])
    chance_line(ax, rows)
    ax.set_ylabel("MQAR test accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    title(ax, "stability of the ReLU family (x: diverged)", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
