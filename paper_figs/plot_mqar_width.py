"""Figure: MQAR accuracy against width (linear's feature dimension marked) and against decoding-state bytes (K2).

    python -m paper_figs.plot_mqar_width mqar_width.csv mqar_width.png
"""

import sys

import numpy as np

from paper_figs._plot import chance_line, color, group, log_ticks, main, plt, save, spread_line, title, value, variant


def plot(rows, out):
    groups = group(rows, variant, lambda r: int(r["model.d_model"]))
    pairs = int(rows[0]["task.num_kv_pairs"])
    heads = int(rows[0]["model.num_heads"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in dict.fromkeys(variant(r) for r in rows):
        widths = sorted(w for v, w in groups if v == name)
        accuracy = [[value(r, "test_accuracy") for r in groups[(name, w)]] for w in widths]
        state = [np.mean([value(r, "decode_state_bytes") for r in groups[(name, w)]]) for w in widths]
        spread_line(axes[0], widths, accuracy, color=color(name), label=name)
        spread_line(axes[1], state, accuracy, color=color(name), label=name)
    for ax in axes:
        chance_line(ax, rows)
    log_ticks(axes[0], [w for _, w in groups])
    axes[0].axvline(pairs * heads, color=color("linear"), ls=":", lw=1)
    axes[0].annotate(f"head_dim = {pairs} pairs", (pairs * heads, 0.4), rotation=90, fontsize=6,
                     color=color("linear"))
    axes[0].set(xlabel=f"d_model ({heads} heads; linear feature dim = d_model/{heads})", ylabel="MQAR accuracy",
                ylim=(0, 1.05))
    axes[1].set(xscale="log", xlabel=f"decoding state after {rows[0]['task.seq_len']} tokens (bytes)",
                ylabel="MQAR accuracy", ylim=(0, 1.05))
    axes[0].legend(fontsize=7)
    title(axes[0], f"MQAR, {pairs} pairs", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
