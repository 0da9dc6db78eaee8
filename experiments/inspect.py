"""Look inside a finished run: its summary, its test accuracy recomputed from the kept weights, and the
attention maps of every layer and head for one example.

    python -m experiments.inspect results/mqar/0123456789abcdef.json --out maps.png
    python -m experiments.inspect 0123abcd --results-dir results --example 3 --length 128

The accuracy is recomputed on the run's own test set (the same examples,
so the same number the result records, up to float round-off on another
machine); ``--length`` evaluates the trained model at another sequence length
instead (for a model whose positions allow it). The figure marks each
example's labelled positions (the rows the task asks about) on its rows.
Anything that is not a finished run with its kept weights is refused in one
line, exit status 2 (:mod:`experiments.loading`).
"""

from __future__ import annotations

import argparse
import sys

import torch

import synthetic
from experiments import cache, cli
from experiments.atomic import NoSpace, atomic_path, why
from experiments.config import ConfigError
from experiments.loading import find_run, load_run
from experiments.runs import describe
from experiments.train import at_length, evaluate
from experiments.weights import WeightsError


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="python -m experiments.inspect", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a result file (results/<task>/<key>.json) or a run key (or its start)")
    parser.add_argument("--results-dir", help="the results folder (default: $RESULTS_DIR or results/)")
    parser.add_argument("--example", type=int, default=0, help="which test example's maps to draw (default 0)")
    parser.add_argument("--length", type=int, help="evaluate at this sequence length instead of the trained one")
    parser.add_argument("--out", help="write the attention maps of every layer and head to this PNG")
    return parser


def draw_maps(maps: list[torch.Tensor], asked: torch.Tensor, title: str, out: str) -> None:
    """One panel per layer and head: the example's ``(T, T)`` map, labelled rows marked on the left."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # a variant's name is text, not mathtext
    import matplotlib.pyplot as plt

    layers, heads = len(maps), maps[0].shape[0]
    fig, axes = plt.subplots(layers, heads, figsize=(2.6 * heads, 2.6 * layers), squeeze=False)
    rows = asked.nonzero().flatten().tolist()
    for layer, head_maps in enumerate(maps):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(head_maps[head].float().abs().numpy(), cmap="viridis", aspect="auto", interpolation="nearest")
            ax.scatter([-0.5] * len(rows), rows, marker=">", color="red", s=8, clip_on=False)
            ax.set_title(f"layer {layer} head {head}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{title} (red: labelled rows)", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def inspect(args: argparse.Namespace) -> list[str]:
    """The lines to print (and the figure written, with ``--out``)."""
    root = cache.results_dir(args.results_dir)
    config, result = find_run(args.run, root)
    _, model = load_run(args.run, root)
    task = config.task if args.length is None else at_length(config.task, args.length)
    test = synthetic.test_set(task)
    if not 0 <= args.example < test[0].shape[0]:
        raise ConfigError(f"--example must be in [0, {test[0].shape[0] - 1}], got {args.example}")
    scores = evaluate(model, task, test, autocast=False)
    lines = [describe(result), f"recomputed test accuracy {scores['test_accuracy']:.4f} on {test[0].shape[0]} "
             f"examples at length {task.seq_len}"]
    if args.out:
        one = tuple(t[args.example:args.example + 1] for t in test)
        maps, _ = model.attention_maps(one)
        asked = one[-2 if synthetic.kind_of(task) == "seq2seq" else 1][0] != synthetic.IGNORE_INDEX
        draw_maps([m[0] for m in maps], asked, f"{config.run_id()}, example {args.example}", args.out)
        lines.append(f"maps     {args.out} ({len(maps)} layers x {maps[0].shape[1]} heads)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with torch.no_grad():
            lines = inspect(args)
    except (WeightsError, ConfigError) as error:
        parser.error(str(error))
    except NoSpace as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # --out in a folder that does not exist or cannot be written
        parser.error(f"--out {args.out} cannot be written ({why(error)})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
