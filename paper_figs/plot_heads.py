"""Figure: attention statistics of trained models: sparsity, null rows, head diversity, top mass (R1, R5, R6).

    python -m paper_figs.plot_heads heads.csv heads.png
"""

import sys

from paper_figs._plot import caption, color, group, main, mean_range, plt, save, value, variant

PANELS = [("attn.sparsity.mean", "sparsity rate", 0.5), ("attn.null_rate.max", "largest null-row rate", None),
          ("attn.head_diversity.mean", "JS across heads", None), ("attn.top_mass.mean", "top 0.2% mass", None)]


def plot(rows, out):
    groups = group(rows, variant)
    names = [key[0] for key in groups]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(10, 2.8))
    for ax, (column, label, baseline) in zip(axes, PANELS):
        stats = [mean_range(value(r, column) for r in groups[(n,)]) for n in names]  # the seed spread as a bar
        ax.bar(range(len(names)), [m for m, _, _ in stats], color=[color(n) for n in names],
               yerr=[[lo for _, lo, _ in stats], [hi for _, _, hi in stats]], capsize=2)
        ax.set_xticks(range(len(names)), names, rotation=45, fontsize=7)
        ax.set_title(label, fontsize=8)
        if baseline is not None:
            ax.axhline(baseline, color="k", ls=":", lw=1)
            ax.annotate("ReLU at init", (len(names) - 0.5, baseline), ha="right", va="bottom", fontsize=6)
    fig.suptitle(f"attention statistics of trained models ({caption(rows)})", fontsize=9)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
