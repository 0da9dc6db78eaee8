"""Figure: forward+backward time of each variant relative to softmax, per length (R4).

    python -m paper_figs.plot_speed speed.json speed.png

Reads the kernel rows of the benchmark's JSON report (``experiments.bench_scaling``).
"""

import json
import sys
from pathlib import Path

import numpy as np

from paper_figs._plot import color, draw, plt, save, shape_problem


def plot(report, out):
    rows = [r for r in report["kernels"] if r.get("seconds_ratio")]
    lengths = sorted({int(r["length"]) for r in rows})
    names = list(dict.fromkeys(r["label"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(lengths)
    for j, length in enumerate(lengths):
        ratios = {r["label"]: float(r["seconds_ratio"]) for r in rows if int(r["length"]) == length}
        ax.bar(np.arange(len(names)) + (j - (len(lengths) - 1) / 2) * width, [ratios[n] for n in names], width,
               label=f"T={length}", alpha=0.5 + 0.5 * j / max(1, len(lengths) - 1),
               color=[color(next(r["variant"] for r in rows if r["label"] == n)) for n in names])
    ax.axhline(1.0, color="k", lw=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("time / softmax time")
    ax.legend(fontsize=7)
    ax.set_title(f"forward+backward time relative to softmax ({report['device']})", fontsize=9)
    save(fig, out)


def main(argv):
    if len(argv) != 2:
        print("usage: python -m paper_figs.plot_speed speed.json speed.png", file=sys.stderr)
        return 2
    source = Path(argv[0])
    try:
        if source.exists() and not source.is_file():  # a folder, or a FIFO that would block the read
            raise ValueError("not a plain file")
        report = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # a folder, not UTF-8, not JSON, nested too deep
        print(f"error: {argv[0]}: not the speed benchmark's JSON report ({shape_problem(error)})", file=sys.stderr)
        return 2
    return draw(plot, report, argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
