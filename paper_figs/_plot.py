"""What the plot scripts share: a fixed colour per variant, titles, log ticks, atomic saving (CSV reading in _rows)."""

from __future__ import annotations

import colorsys
import hashlib
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # names read from a results folder are text: '$x$' is not mathtext
import matplotlib.pyplot as plt  # noqa: E402

from experiments.atomic import atomic_path, why  # noqa: E402
from paper_figs._rows import group, load, value, variant  # noqa: E402,F401 - re-exported for the plot scripts

# One colour per variant, the same in every figure; a variant not listed gets its own from its name (color()).
COLORS = {
    "softmax": "#1f77b4", "softmax_ln": "#aec7e8", "linear": "#ff7f0e", "norm_linear": "#ffbb78",
    "inline": "#8c564b", "relu": "#d62728", "rela_g": "#2ca02c", "rela_i": "#98df8a", "relu_len": "#e377c2",
    "reluformer": "#9467bd", "reluformer+reg0.1": "#c5b0d5",
    "reluformer+reg0.01": "#dadaeb", "reluformer+reg1": "#54278f", "sigmoid": "#17becf", "sparsemax": "#bcbd22",
    "entmax15": "#7f7f7f", "rmsnorm": "#637939", "ssmax": "#393b79", "softmax1": "#6baed6", "softpick": "#e7ba52",
    "stick_breaking": "#843c39",
}


def color(name: str) -> str:
    """The variant's fixed colour; for a name not in :data:`COLORS`, one derived from the name (the same in
    every run and figure), saturated enough to tell from the grey of chance lines."""
    if name in COLORS:
        return COLORS[name]
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 16**8
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.8)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def caption(rows) -> str:
    """Profile, seeds and the token mixing before attention (the same for every variant of a sweep)."""
    seeds = len({r.get("train.seed") for r in rows})
    mixing = sorted({r.get("model.token_mixing", "none") for r in rows})
    mixing = [m if m != "conv" else f"conv{rows[0].get('model.conv_width', '')}" for m in mixing]
    return f"{rows[0].get('profile', '?')} profile, {seeds} seed{'s' if seeds > 1 else ''}, " \
           f"token mixing {'/'.join(mixing)}"


def mean_range(values) -> tuple[float, float, float]:
    """Mean, and the distances down to the minimum and up to the maximum (the seed spread as an error bar)."""
    values = list(values)
    average = sum(values) / len(values)
    # equal values can average a rounding error past their extremes (0.4 three times): a bar is never negative
    return average, max(0.0, average - min(values)), max(0.0, max(values) - average)


def spread_line(ax, xs, groups_of_values, **style):
    """Means with min..max bars over seeds, one point per x."""
    stats = [mean_range(v) for v in groups_of_values]
    return ax.errorbar(xs, [m for m, _, _ in stats], yerr=[[lo for _, lo, _ in stats], [hi for _, _, hi in stats]],
                       capsize=3, marker="o", **style)


def chance_line(ax, rows, x=None) -> None:
    """The task's chance level (grey dashes), the learned threshold (grey dots) and, where the task states one
    below 1, its ceiling (grey dash-dots), from the CSV.

    With ``x`` (a function of a row), the levels are drawn against it (they vary
    with, e.g., the number of pairs); otherwise as horizontal lines.
    """
    if "chance" not in rows[0]:
        return
    top = max((float(r["ceiling"]) for r in rows if r.get("ceiling")), default=1.0)
    if top < 1:
        ax.axhline(top, color="gray", ls="-.", lw=1, label="ceiling", zorder=1)
    if x is None:
        ax.axhline(float(rows[0]["chance"]), color="gray", ls="--", lw=1, label="chance", zorder=1)
        ax.axhline(float(rows[0]["learned_threshold"]), color="gray", ls=":", lw=1, label="learned", zorder=1)
        return
    points = sorted({(x(r), float(r["chance"]), float(r["learned_threshold"])) for r in rows})
    xs = [p[0] for p in points]
    ax.plot(xs, [p[1] for p in points], color="gray", ls="--", lw=1, label="chance", zorder=1)
    ax.plot(xs, [p[2] for p in points], color="gray", ls=":", lw=1, label="learned", zorder=1)


def title(ax, text: str, rows) -> None:
    ax.set_title(f"{text} ({caption(rows)})", fontsize=9)


def log_ticks(ax, values) -> None:
    """A log x axis labelled with exactly the values swept."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(values)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def save(fig, out: str) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=140)
    plt.close(fig)


def shape_problem(error: Exception) -> str:
    """What input of the wrong shape raised, in words: a missing column or field by its name."""
    if isinstance(error, KeyError):
        return f"missing {error}"
    return f"{type(error).__name__}: {' '.join(str(error).split())[:120]}"


def draw(plot, data, source: str, out: str) -> int:
    """``plot(data, out)``; data of the wrong shape, an output that cannot be written or a full disk end in
    one line naming the file, exit status 2."""
    try:
        plot(data, out)
    except (KeyError, ValueError, TypeError, IndexError) as error:  # a damaged or planted input: rows of another shape
        print(f"error: {source}: not what this figure reads ({shape_problem(error)})", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {why(error)}", file=sys.stderr)
        return 2
    finally:
        plt.close("all")
    return 0


def main(plot, argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: plot_<name>.py INPUT.csv OUTPUT.png", file=sys.stderr)
        return 2
    return draw(plot, load(argv[0]), argv[0], argv[1])
