"""Figure: retrieval accuracy against sequence length per variant (S5).

    python -m paper_figs.plot_long_context long_context.csv long_context.png

MQAR with blank filler (quick) or with random filler from tokens of its own (deep, full); chance and the
learned threshold come from the CSV, and the task's ceiling is 1.
"""

import sys


from paper_figs._plot import chance_line, color, group, log_ticks, main, plt, save, spread_line, title, value, variant


def plot(rows, out):
    groups = group(rows, variant, lambda r: int(r["task.seq_len"]))
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for name in dict.fromkeys(variant(r) for r in rows):
        lengths = sorted(n for v, n in groups if v == name)
        spread_line(ax, lengths, [[value(r, "test_accuracy") for r in groups[(name, n)]] for n in lengths],
                    color=color(name), label=name)
    chance_line(ax, rows)
    log_ticks(ax, [n for _, n in groups])
    tokens = int(rows[0].get("task.filler_tokens") or 0)
    filler = f"random from {tokens} tokens of its own" if tokens else rows[0].get("task.filler") or "-"
    ax.set(xlabel="sequence length", ylabel="MQAR test accuracy", ylim=(0, 1.05))
    ax.legend(fontsize=7)
    title(ax, f"recall against length, filler {filler}", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
