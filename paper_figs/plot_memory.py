"""Figure: memorisation accuracy against MLP slots per activation, and the softmax FFN's top-slot mass (S2, S3, S6).

    python -m paper_figs.plot_memory memory.csv memory.png

Runs at another width or weight decay than relu's (the S6 arms) are drawn as lines of their own, labelled
with their width and weight decay. The memorisation task's ceiling is 1 (every fact can be stored), so only
chance and the learned threshold are drawn.
"""

import sys


from paper_figs._plot import chance_line, group, log_ticks, main, plt, save, spread_line, title, value

STYLE = {"relu": "tab:red", "softmax": "tab:blue", "softmax_ln": "tab:purple", "gelu": "tab:gray"}
ARM_STYLE = (("--", 10), ("-.", 14), (":", 18), ("--", 22))  # the S6 arms' (line, ring size): rings around a point


def _arm(row) -> tuple[int, float]:
    return int(row["model.d_model"]), float(row.get("train.weight_decay") or 0.1)


def _line(row, main_arm) -> str:
    """The activation, with the arm's width and weight decay where it is not relu's."""
    if _arm(row) == main_arm:
        return row["model.mlp_activation"]
    width, decay = _arm(row)
    return f"{row['model.mlp_activation']} d={width} wd={decay:g}"


def plot(rows, out):
    arms = sorted({_arm(r) for r in rows if r["model.mlp_activation"] == "relu"}) or [_arm(rows[0])]
    lines = group(rows, lambda r: _line(r, arms[0]), lambda r: int(r["model.mlp_ratio"]) * int(r["model.d_model"]))
    others = sorted({name for name, _ in lines if " d=" in name})
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for name in dict.fromkeys(name for name, _ in lines):
        slots = sorted(s for n, s in lines if n == name)
        activation = name.split(" ")[0]
        line, size = ARM_STYLE[others.index(name) % len(ARM_STYLE)] if name in others else ("-", 6)
        style = dict(color=STYLE.get(activation), label=name, ls=line, markersize=size,
                     markerfacecolor="none" if name in others else None)
        for ax, column in ((axes[0], "test_accuracy"), (axes[1], "ffn_top_mass_at_queries")):
            spread_line(ax, slots, [[value(r, column) for r in lines[(name, s)]] for s in slots], **style)
    slots = [s for _, s in lines]
    for ax in axes:
        log_ticks(ax, slots)
    chance_line(axes[0], rows)
    axes[0].set(xlabel="MLP slots", ylabel="memorisation accuracy", ylim=(0, 1.05))
    axes[1].set(xlabel="MLP slots", ylabel="top 0.2% slots' mass share, at queries", ylim=(0, 1.05))
    axes[1].axhline(0.85, color="k", ls=":", lw=1)
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    title(axes[0], f"{rows[0]['task.num_facts']} facts, d={arms[0][0]} wd={arms[0][1]:g}", rows)
    save(fig, out)


if __name__ == "__main__":
    sys.exit(main(plot, sys.argv[1:]))
