"""The learning-rate search the recipe's rates come from (experiments/sweeps/_common.py).

Each searched variant on the recall model (token shift, width 32, 2 heads)
and MQAR with 8 pairs at length 64, at three peak learning rates. The quick
table is committed (``paper_figs/lr_search/quick.csv``, rebuilt with ``make
lr-search``) and the other sweeps cite it; it is not part of ``make all``.
"""

from __future__ import annotations

from experiments.sweeps._common import LEARNING_RATES, RECALL_MODEL, RECALL_TASK, RECALL_TRAIN, make_config

VARIANTS = tuple(LEARNING_RATES)  # every variant with a rate of its own; the others take a relative's (FAMILY)
TASK = ("mqar", RECALL_TASK)
QUICK = dict(lrs=(1e-3, 3e-3, 1e-2), seeds=(0,), train=RECALL_TRAIN, model=RECALL_MODEL)
PROFILES = {
    "smoke": dict(lrs=(3e-3,), seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, token_mixing="shift")),
    "quick": QUICK,
    "deep": QUICK,  # the quick search: the recipe's learning rates are the quick profile's
    "full": dict(lrs=(3e-4, 1e-3, 3e-3, 1e-2), seeds=(0, 1),
                 train=dict(steps=5000, warmup_steps=200, eval_every=100, target_accuracy=0.99),
                 model=dict(d_model=64, num_heads=4, token_mixing="shift")),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(TASK, name, seed=seed, train={**p["train"], "lr": lr}, **p["model"])
            for name in VARIANTS for lr in p["lrs"] for seed in p["seeds"]]


def best_rates(rows: list[dict[str, str]]) -> dict[str, float]:
    """Per variant, the learning rate the recipe takes from a collected search (rows of its CSV).

    Order: most seeds learned, then fewest mean steps run (runs stop at the
    target accuracy), then highest mean accuracy.
    """
    table: dict[str, dict[float, list[dict[str, str]]]] = {}
    for row in rows:
        table.setdefault(row["model.attention.name"], {}).setdefault(float(row["train.lr"]), []).append(row)

    def score(runs: list[dict[str, str]]) -> tuple[float, float, float]:
        accuracy = [float(r["test_accuracy"] or 0.0) for r in runs]
        return (sum(r["learned"] == "1" for r in runs) / len(runs),
                -sum(float(r["steps_run"]) for r in runs) / len(runs), sum(accuracy) / len(accuracy))

    return {name: max(by_lr, key=lambda lr: score(by_lr[lr])) for name, by_lr in table.items()}


def markdown(rows: list[dict[str, str]]) -> str:
    """The search as a table: steps to the target and final accuracy per variant and learning rate."""
    lrs = sorted({float(r["train.lr"]) for r in rows})
    best = best_rates(rows)
    lines = ["| variant | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen |",
             "|---|" + "---|" * (len(lrs) + 1)]
    for name in dict.fromkeys(r["model.attention.name"] for r in rows):
        cells = []
        for lr in lrs:
            runs = [r for r in rows if r["model.attention.name"] == name and float(r["train.lr"]) == lr]
            cells.append(", ".join(f"{float(r['test_accuracy'] or 0):.3f} @ {r['steps_run']}"
                                   + ("" if r["learned"] == "1" else " (did not learn)") for r in runs) or "-")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {best[name]:g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.sweeps.lr_search SEARCH.csv TABLE.md``: the search as a Markdown table."""
    import csv
    import sys

    from experiments.atomic import atomic_write_text

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m experiments.sweeps.lr_search SEARCH.csv TABLE.md", file=sys.stderr)
        return 2
    with open(argv[0], newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = (f"# Learning-rate search ({rows[0]['profile']} profile)\n\n"
              f"MQAR, length {rows[0]['task.seq_len']}, {rows[0]['task.num_kv_pairs']} pairs, vocabulary "
              f"{rows[0]['task.vocab_size']}; width {rows[0]['model.d_model']}, {rows[0]['model.num_heads']} heads, "
              f"token mixing {rows[0]['model.token_mixing']}; runs stop at test accuracy "
              f"{rows[0]['train.target_accuracy']} or {rows[0]['train.steps']} steps. Each cell: final test "
              "accuracy @ steps run. `chosen` is the rate the recipe uses (experiments/sweeps/_common.py).\n\n")
    atomic_write_text(argv[1], header + markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
