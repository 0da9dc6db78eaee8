"""Figure: accuracy against test length after training at one length, per task (B2).

    python -m paper_figs.plot_length_gen length_gen.csv length_gen.png
"""

import sys

from paper_figs._plot import chance_line, color, group, log_ticks, main, plt, save, spread_line, title, value, variant


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


def plot(rows, out):
    tasks = sorted({r["task.name"] for r in rows})  # MQAR and needle; needle alone at the deep profile
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        accuracy_by_length(ax, rows, task)
        ax.legend(fontsize=6, ncol=2)
        title(ax, f"B2: {task}", [r for r in rows if r["task.name"] == task])
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
