"""Figure: memorisation accuracy against MLP slots per activation, and the softmax FFN's top-slot mass (S2, S3, S6).

    python -m paper_figs.plot_memory memory.csv memory.png
"""

import sys


from paper_figs._plot import chance_line, group, log_ticks, main, plt, save, spread_line, title, value

STYLE = {"relu": "tab:red", "softmax": "tab:blue", "softmax_ln": "tab:purple", "gelu": "tab:gray"}


def plot(rows, out):
    groups = group(rows, "model.mlp_activation", lambda r: int(r["model.mlp_ratio"]) * int(r["model.d_model"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for activation in dict.fromkeys(r["model.mlp_activation"] for r in rows):
        slots = sorted(s for a, s in groups if a == activation)
        for ax, column in ((axes[0], "test_accuracy"), (axes[1], "ffn_top_mass_at_queries")):
            spread_line(ax, slots, [[value(r, column) for r in groups[(activation, s)]] for s in slots],
                        color=STYLE.get(activation), label=activation)
    slots = [s for _, s in groups]
    for ax in axes:
        log_ticks(ax, slots)
    chance_line(axes[0], rows)
    axes[0].set(xlabel="MLP slots", ylabel="memorisation accuracy", ylim=(0, 1.05))
    axes[1].set(xlabel="MLP slots", ylabel="top 0.2% slots' mass share, at queries", ylim=(0, 1.05))
    axes[1].axhline(0.85, color="k", ls=":", lw=1)
    axes[0].legend(fontsize=7)
    title(axes[0], f"FFN memory, {rows[0]['task.num_facts']} facts", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
