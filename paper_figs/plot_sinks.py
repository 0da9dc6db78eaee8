"""Figure: attention sinks at the dormant rows of Bigram-Backcopy, per variant and depth (B5, B3).

    python -m paper_figs.plot_sinks sinks.csv sinks.png
"""

import sys

from paper_figs._plot import caption, chance_line, color, group, main, mean_range, plt, save, value, variant

PANELS = [("test_accuracy", "test accuracy"),
          ("sink.first_weight_dormant", "first-token weight, dormant rows"),
          ("sink.first_weight_active", "first-token weight, active rows"),
          ("sink.null_dormant", "all-zero dormant rows"),
          ("sink.value_norm_ratio", "first token's value norm / others'")]


def _bars(ax, groups, keys, column):
    stats = [mean_range(value(r, column) for r in groups[key]) for key in keys]  # the seed spread as a bar
    ax.bar(range(len(keys)), [m for m, _, _ in stats], color=[color(name) for _, name in keys],
           yerr=[[lo for _, lo, _ in stats], [hi for _, _, hi in stats]], capsize=2)
    ax.set_xticks(range(len(keys)), [f"{name} L{layers}" for layers, name in keys], rotation=60, fontsize=6)


def plot(rows, out):
    groups = group(rows, lambda r: int(r["model.num_layers"]), variant)
    keys = sorted(groups, key=lambda k: (k[0], k[1]))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.2))
    for ax, (column, label) in zip(axes, PANELS):
        _bars(ax, groups, keys, column)
        ax.set_title(label, fontsize=8)
        if column == "test_accuracy":
            chance_line(ax, rows)
            ax.legend(fontsize=5, loc="lower right")
        if column.startswith("sink.first_weight"):
            ax.axhline(mean_range(value(r, "sink.uniform") for r in rows)[0], color="k", ls=":", lw=1)
            ax.annotate("uniform row", (len(keys) - 0.5, value(rows[0], "sink.uniform")), ha="right", va="bottom",
                        fontsize=6)
        if column == "sink.value_norm_ratio":
            ax.axhline(1.0, color="k", ls=":", lw=1)
    fig.suptitle(f"sinks on Bigram-Backcopy: the most sink-like head per model ({caption(rows)})", fontsize=9)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
