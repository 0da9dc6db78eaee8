"""The "beyond the seeds" block of the ledger (B1-B4): claims of the normalisations after the three seed
papers, each criterion next to its judge, as in :mod:`paper_figs.claims` (which imports this module and checks
that every id is registered once)."""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from paper_figs._rows import value
from paper_figs._judging import (DidNotLearn, Evidence, Missing, Untestable, by_variant, claim, compare, differ,
                                 grade,
                                 learned, rows, spread, theory_judge)

claim("B1", "softmax's weight on a key leading by a fixed margin fades as n grows; SSMax keeps it if s delta >= 1",
      "SSMax, Nakanishi arXiv 2501.19399", "max softmax output -> 0 as n grows; SSMax keeps it near 1",
      "every check of theory/fading.py holds")(theory_judge("B1"))
claim("B4", "Jacobian bounds: SSMax s log n / 4, stick-breaking 1/4, softpick unbounded as its row mass -> 0",
      "Nakanishi 2501.19399; Tan et al. 2410.17980; Zuhri et al. 2504.20966", "derivation",
      "every B4 check of theory/gradients.py holds")(theory_judge("B4"))

LENGTH_CLAIMANTS = ("ssmax", "stick_breaking")


def _drop(rows_, longest: str) -> list[dict[str, str]]:
    """The rows with ``drop``: accuracy at the longest test length minus at the training length."""
    return [{**r, "drop": str(value(r, longest) - value(r, "test_accuracy"))} for r in rows_]


@claim("B2",
       "SSMax and stick-breaking generalise to longer contexts better than softmax",
       "Nakanishi arXiv 2501.19399; Tan et al. arXiv 2410.17980",
       "SSMax keeps needle retrieval at lengths past training where softmax fails; stick-breaking extrapolates",
       "per task (MQAR, needle; no position embedding), where softmax and the claimant learned at the training "
       "length: the claimant loses less accuracy from 1x to the longest test length than softmax (the seed rule); "
       "softmax must lose some (by the same rule), or there is no fading to repair (inconclusive)")
def judge_b2(ev: Evidence):
    found = rows(ev, "length_gen")
    lengths = sorted({int(c.split(".")[1]) for c in found[0] if c.startswith("length.")})
    if not lengths:
        raise Missing("length.<n> columns in length_gen")
    longest = f"length.{lengths[-1]}"
    tasks: dict[str, list] = defaultdict(list)
    for r in found:
        tasks[r["task.name"]].append(r)
    passed, total, notes, skipped = 0, 0, [], []
    for task, task_rows in sorted(tasks.items()):
        groups = {name: _drop(rs, longest) for name, rs in by_variant(task_rows).items()}
        if "softmax" not in groups:
            raise Missing(f"softmax on {task}")
        summary = ", ".join(f"{name} {spread(rs, 'test_accuracy')} -> {spread(rs, longest)}"
                            for name, rs in sorted(groups.items()))
        notes.append(f"{task} (1x -> {lengths[-1] // int(task_rows[0]['task.seq_len'])}x): {summary}")
        if not learned(groups["softmax"]):
            skipped.append(f"softmax on {task}")
            continue
        softmax_drop = [value(r, "drop") for r in groups["softmax"]]
        if compare(softmax_drop, 0.0) >= 0:
            skipped.append(f"softmax's accuracy on {task} changes by {mean(softmax_drop):+.3f} from 1x to "
                           f"{lengths[-1] // int(task_rows[0]['task.seq_len'])}x: no loss by the seed rule")
            continue
        for name in LENGTH_CLAIMANTS:
            if name not in groups or not learned(groups[name]):
                skipped.append(f"{name} on {task}")
                continue
            total += 1
            passed += differ(groups[name], groups["softmax"], "drop") > 0
    ours = "; ".join(notes)
    if total == 0:
        reason = "; ".join(skipped)
        if any(s.startswith("softmax's accuracy") for s in skipped):
            raise Untestable(f"{reason} ({ours})")
        raise DidNotLearn(f"{reason} ({ours})")
    return ours + (f"; not judged: {', '.join(skipped)}" if skipped else ""), grade(passed, total)


SINK_BASELINE, SINK_REMOVERS = "softmax", ("softmax1", "softpick")
SINK_COLUMN = "attn.first_mass.max"  # the largest first-token share over layers and heads: sinks form per head


@claim("B3",
       "off-by-one softmax and softpick remove the attention sink; softpick and ReLA-g switch rows off",
       "Miller 2023 (softmax_1); Xiao et al. arXiv 2309.17453; Zuhri et al. arXiv 2504.20966",
       "softpick: 0% sink rate against softmax's heavy first-token attention",
       "trained MQAR models (most seeds learned), per head: softmax's head with the largest first-token share "
       "puts more there than a uniform row would (a sink; if not, inconclusive), and softmax_1's and softpick's "
       "largest head share is below softmax's (the seed rule)")
def judge_b3(ev: Evidence):
    groups = {name: rs for name, rs in by_variant([r for r in rows(ev, "length_gen")
                                                   if r["task.name"] == "mqar"]).items()}
    needed = (SINK_BASELINE, *SINK_REMOVERS)
    if any(name not in groups for name in needed):
        raise Missing(f"MQAR runs of {', '.join(needed)} in length_gen")
    failed = [f"{name} (acc {spread(groups[name], 'test_accuracy')})" for name in groups if not learned(groups[name])
              and name in (*needed, "rela_g")]
    if failed:
        raise DidNotLearn(", ".join(failed))
    length = int(groups[SINK_BASELINE][0]["task.seq_len"])
    uniform = mean(1 / n for n in range(2, length + 1))  # a causal row that sees n >= 2 keys, spread evenly
    ours = ", ".join(f"{name} first-token share of its most sink-like head {spread(rs, SINK_COLUMN)} (mean over "
                     f"heads {spread(rs, 'attn.first_mass.mean')}), null rows {spread(rs, 'attn.null_rate.mean')}"
                     for name, rs in sorted(groups.items()) if name in (*needed, "rela_g")) + \
        f" (uniform share {uniform:.3f})"
    if compare([value(r, SINK_COLUMN) for r in groups[SINK_BASELINE]], uniform) <= 0:
        raise Untestable(f"softmax formed no sink in any head: {ours}")
    passed = sum(differ(groups[name], groups[SINK_BASELINE], SINK_COLUMN) < 0 for name in SINK_REMOVERS)
    return ours, grade(passed, len(SINK_REMOVERS))
