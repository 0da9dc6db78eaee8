"""Figure: MQAR accuracy with and without token mixing before attention (the plateau, as a finding).

    python -m paper_figs.plot_mqar_mixing mqar_mixing.csv mqar_mixing.png

One group of bars per attention variant, one bar per token mixing (none,
shift, conv), mean over seeds with the min..max spread, the steps each run
used written on its bar; the chance level and the learned threshold are
drawn. Without mixing, recall needs the first layer to learn a previous-token
step by attention, and the runs sit at the guess among the example's values.
"""

import sys

import numpy as np

from paper_figs._plot import chance_line, group, main, mean_range, plt, save, title, value, variant

MIXING_COLORS = {"none": "#bbbbbb", "shift": "#1f77b4", "conv": "#2ca02c"}


def plot(rows, out):
    names = list(dict.fromkeys(variant(r) for r in rows))
    mixings = list(dict.fromkeys(r["model.token_mixing"] for r in rows))
    groups = group(rows, variant, "model.token_mixing")
    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    width = 0.8 / len(mixings)
    for j, mixing in enumerate(mixings):
        for i, name in enumerate(names):
            runs = groups.get((name, mixing), [])
            if not runs:
                continue
            average, low, high = mean_range(value(r, "test_accuracy") for r in runs)
            x = i + (j - (len(mixings) - 1) / 2) * width
            ax.bar(x, average, width, yerr=[[low], [high]], capsize=2, color=MIXING_COLORS.get(mixing, "gray"),
                   label=mixing if i == 0 else None)
            steps = int(np.mean([value(r, "steps_run") for r in runs]))
            ax.annotate(f"{steps}", (x, average + high + 0.02), ha="center", fontsize=5)
    chance_line(ax, rows)
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="MQAR test accuracy", ylim=(0, 1.22))
    first = rows[0]
    ax.text(0.01, 0.95, f"T={first['task.seq_len']} N={first['task.num_kv_pairs']} d={first['model.d_model']} "
            f"h={first['model.num_heads']}; number: steps run (<= {first['train.steps']})", transform=ax.transAxes,
            fontsize=6, color="gray")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    title(ax, "token mixing before attention", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
