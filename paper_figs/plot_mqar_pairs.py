"""Figure: MQAR test accuracy against the number of key-value pairs (K2), and against the length (D1).

    python -m paper_figs.plot_mqar_pairs results.csv figure.png

Reads the CSV written by ``python -m experiments.sweep mqar_pairs``. The pairs arm (one length, several pair
counts) is drawn against the pairs; the length arm (one pair count at several lengths: linear attention with
more features than pairs) against the length, in a panel of its own when the CSV has it. Each point is the
mean over seeds, the bar the min..max; a run that diverged is drawn as a cross at accuracy 0 (it has no final
accuracy), and a run that stopped at its step budget without reaching its target is drawn hollow, so a
budget-limited point is not mistaken for a converged one (the length arm trains without a target: every point
is hollow there). The chance level (1/N: a guess among the example's values) and the learned threshold are
drawn; MQAR's ceiling is 1.
"""

import sys

from paper_figs._plot import (caption, chance_line, color, group, log_ticks, main, mean_range, plt, save, value,
                              variant)


def _arms(rows):
    """(pairs-arm rows, length-arm rows): the length arm is a (width, heads, pairs) trained at several lengths."""
    arms = group(rows, lambda r: (r["model.d_model"], r["model.num_heads"], r["task.num_kv_pairs"]))
    by_length = {arm for arm, rs in arms.items() if len({r["task.seq_len"] for r in rs}) >= 2}
    return ([r for arm, rs in arms.items() if arm not in by_length for r in rs],
            [r for arm, rs in arms.items() if arm in by_length for r in rs])


def _lines(ax, rows, x) -> None:
    """One line per variant against ``x`` (a function of a row): mean, min..max, hollow where unfinished."""
    by_variant = group(rows, variant, x)
    for name in sorted({v for v, _ in by_variant}):
        xs = sorted(n for v, n in by_variant if v == name)
        means, errors, finished = [], [[], []], []
        for n in xs:
            runs = by_variant[(name, n)]
            average, down, up = mean_range(value(r, "test_accuracy") for r in runs)  # a diverged run counts as 0
            means.append(average)
            errors[0].append(down)
            errors[1].append(up)
            finished.append(all(r["status"] == "reached_target" for r in runs))
            for r in runs:
                if r["status"] == "diverged":
                    ax.plot(n, 0.0, "x", color="black")
        shade = color(name)
        ax.errorbar(xs, means, yerr=errors, capsize=3, label=name, color=shade, zorder=2)
        for n, m, done in zip(xs, means, finished):
            ax.plot(n, m, "o", markeredgecolor=shade, markerfacecolor=shade if done else "white", zorder=3)
    chance_line(ax, rows, x=x)
    log_ticks(ax, [n for _, n in by_variant])
    ax.set_ylabel("MQAR test accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)


def _pairs_panel(ax, rows) -> None:
    _lines(ax, rows, lambda r: int(r["task.num_kv_pairs"]))
    first = rows[0]
    ax.set_xlabel("key-value pairs")
    ax.set_title(f"MQAR recall vs pairs ({caption(rows)})", fontsize=8)
    ax.text(0.01, 0.01, f"T={first['task.seq_len']} V={first['task.vocab_size']} d={first['model.d_model']} "
            f"h={first['model.num_heads']} steps<={first['train.steps']}; hollow: target not reached",
            transform=ax.transAxes, fontsize=6, color="gray")
    # K2: linear attention's state holds F = head_dim (elu+1) features per head; mark where N reaches it
    head_dim = int(first["model.d_model"]) // int(first["model.num_heads"])
    top = max(int(r["task.num_kv_pairs"]) for r in rows)
    if head_dim <= top:
        ax.axvline(head_dim, color=color("linear"), ls=":", lw=1)
        ax.annotate(f"linear feature dim {head_dim}", (head_dim, 0.45), rotation=90, fontsize=6,
                    color=color("linear"))
    else:
        ax.text(0.99, 0.5, f"linear feature dim {head_dim} > {top} pairs", transform=ax.transAxes, ha="right",
                fontsize=6, color=color("linear"))


def _length_panel(ax, rows) -> None:
    _lines(ax, rows, lambda r: int(r["task.seq_len"]))
    first = rows[0]
    features = int(first["model.d_model"]) // int(first["model.num_heads"])
    ax.set_xlabel("sequence length")
    ax.set_title(f"MQAR recall vs length, {first['task.num_kv_pairs']} pairs ({caption(rows)})", fontsize=8)
    ax.text(0.01, 0.01, f"V={first['task.vocab_size']} filler {first['task.filler']} d={first['model.d_model']} "
            f"h={first['model.num_heads']}: linear feature dim {features} > {first['task.num_kv_pairs']} pairs; "
            f"steps {first['train.steps']}", transform=ax.transAxes, fontsize=6, color="gray")


def plot(rows: list[dict[str, str]], out: str) -> None:
    pairs, lengths = _arms(rows)
    panels = [(draw, part) for draw, part in ((_pairs_panel, pairs), (_length_panel, lengths)) if part]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 3.6), dpi=150, squeeze=False)
    for ax, (draw, part) in zip(axes[0], panels):
        draw(ax, part)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
