"""Figure: copying accuracy by string length; the shaded band is the training range.

    python -m paper_figs.plot_copying_length copying_length.csv copying_length.png
"""

import sys


from paper_figs._plot import chance_line, color, group, main, plt, save, spread_line, title, value, variant


def plot(rows, out):
    lengths = sorted({int(c.split(".")[-1]) for c in rows[0] if c.startswith("slice.length.")})
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for (name,), runs in group(rows, variant).items():
        spread_line(ax, lengths, [[value(r, f"slice.length.{n}") for r in runs] for n in lengths],
                    color=color(name), label=name)
    ax.axvspan(int(rows[0]["task.train_min_len"]) - 0.5, int(rows[0]["task.train_max_len"]) + 0.5, color="gray",
               alpha=0.15, label="training lengths")
    chance_line(ax, rows)
    ax.set(xlabel="string length", ylabel="copy token accuracy", ylim=(0, 1.05))
    ax.legend(fontsize=7)
    title(ax, "copying: length generalisation", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
