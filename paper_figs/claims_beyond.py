"""The "beyond the seeds" block of the ledger (B1-B5): claims of the normalisations after the three seed
papers, each criterion next to its judge, as in :mod:`paper_figs.claims` (which imports this module and checks
that every id is registered once)."""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from paper_figs._rows import value
from paper_figs._judging import (DidNotLearn, Evidence, Missing, Untestable, at_most_partly, by_variant, claim,
                                 compare, differ, grade, learned, rows, spread, theory_judge)

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
       "one that loses more fails, whether or not softmax loses any; one tied with softmax fails where softmax "
       "loses some (by the same rule) and is not judged where it loses none (no fading to repair); a claimant "
       "judged on no task leaves part of the claim unjudged: at most partly")
def judge_b2(ev: Evidence):
    found = rows(ev, "length_gen")
    lengths = sorted({int(c.split(".")[1]) for c in found[0] if c.startswith("length.")})
    if not lengths:
        raise Missing("length.<n> columns in length_gen")
    longest = f"length.{lengths[-1]}"
    tasks: dict[str, list] = defaultdict(list)
    for r in found:
        tasks[r["task.name"]].append(r)
    passed, total, notes, skipped, judged = 0, 0, [], [], set()
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
        fades = compare(softmax_drop, 0.0) < 0
        if not fades:
            notes[-1] += (f"; softmax changes by {mean(softmax_drop):+.3f} from 1x to "
                          f"{lengths[-1] // int(task_rows[0]['task.seq_len'])}x: no loss by the seed rule")
        for name in LENGTH_CLAIMANTS:
            if name not in groups or not learned(groups[name]):
                skipped.append(f"{name} on {task}")
                continue
            order = differ(groups[name], groups["softmax"], "drop")
            if order == 0 and not fades:
                skipped.append(f"{name} on {task} (tied with softmax, which loses nothing: no fading to repair)")
                continue
            total += 1
            judged.add(name)
            passed += order > 0
    ours = "; ".join(notes)
    if total == 0:
        reason = "; ".join(skipped)
        if any("no fading to repair" in s for s in skipped):
            raise Untestable(f"{reason} ({ours})")
        raise DidNotLearn(f"{reason} ({ours})")
    unjudged = [name for name in LENGTH_CLAIMANTS if name not in judged]
    ours += f"; not judged: {', '.join(skipped)}" if skipped else ""
    ours += f"; unjudged part of the claim: {', '.join(unjudged)} (judged on no task)" if unjudged else ""
    return ours, at_most_partly(grade(passed, total), unjudged)


SINK_BASELINE, SINK_REMOVERS, NULL_VARIANTS = "softmax", ("softmax1", "softpick"), ("softpick", "rela_g")
SINK_WEIGHT = "sink.first_weight_dormant"  # the most sink-like head's weight on the first token at dormant rows
SINK_SHARE = "sink.first_share_dormant"  # the same head's share of its row there (an all-zero row counts 0)
NULL_LEVEL = 0.01  # a variant switches rows off when more than this share of its dormant rows are all zero


def _sinks(ev: Evidence, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, list[dict[str, str]]]:
    """The one-layer Bigram-Backcopy runs (the authors' main model) of ``names`` and of those of ``optional``
    the sweep trained, by variant, each group learned (halfway from chance to the task's ceiling)."""
    groups = by_variant([r for r in rows(ev, "sinks") if r["model.num_layers"] == "1"])
    if any(name not in groups for name in names):
        raise Missing(f"one-layer Bigram-Backcopy runs of {', '.join(names)} in sinks")
    present = [name for name in (*names, *optional) if name in groups]
    failed = [f"{name} (acc {spread(groups[name], 'test_accuracy')}, ceiling "
              f"{value(groups[name][0], 'ceiling'):.3f})" for name in present if not learned(groups[name])]
    if failed:
        raise DidNotLearn(", ".join(failed))
    return {name: groups[name] for name in present}


def _sink_line(name: str, rs: list[dict[str, str]]) -> str:
    return (f"{name}: first-token weight at dormant rows {spread(rs, SINK_WEIGHT)} (at active rows "
            f"{spread(rs, 'sink.first_weight_active')}; share {spread(rs, SINK_SHARE)}), row mass "
            f"{spread(rs, 'sink.row_mass_dormant')}, all-zero dormant rows {spread(rs, 'sink.null_dormant')}, "
            f"first token's value norm / others' {spread(rs, 'sink.value_norm_ratio')}")


def _softmax_sinks(soft: list[dict[str, str]]) -> tuple[bool, str]:
    """Whether softmax's most sink-like head is a dormant sink: more weight on the first token at dormant rows
    than a uniform row there and than at its own active rows (both by the seed rule, per seed)."""
    uniform = [value(r, "sink.uniform") for r in soft]
    above_uniform = compare([value(r, SINK_WEIGHT) - u for r, u in zip(soft, uniform)], 0.0) > 0
    dormant_only = compare([value(r, SINK_WEIGHT) - value(r, "sink.first_weight_active") for r in soft], 0.0) > 0
    return above_uniform and dormant_only, (f"uniform row {spread(soft, 'sink.uniform')}; softmax "
                                            f"{'sinks' if above_uniform and dormant_only else 'forms no dormant sink'}")


@claim("B5",
       "softmax heads go dormant by sinking on the first token; ReLU attention does not need to",
       "Guo et al. arXiv 2410.13835 (active-dormant heads, Bigram-Backcopy)",
       "sinks, value drains and residual peaks in 1-3 layer models on Bigram-Backcopy; ReLU attention mitigates them",
       "Bigram-Backcopy, one layer, most seeds learned (halfway from chance to the task's ceiling), the most "
       "sink-like head of each model: (a) softmax's weight on the first token at dormant (non-trigger) rows above a "
       "uniform row's and above its own at active rows (the seed rule on per-seed differences); (b) relu's share of "
       "its dormant rows on the first token (all-zero rows count 0) below softmax's (the seed rule); both: "
       "reproduced, (a) alone: partly, no (a): not reproduced")
def judge_b5(ev: Evidence):
    groups = _sinks(ev, (SINK_BASELINE, "relu"))
    sinks, said = _softmax_sinks(groups[SINK_BASELINE])
    relu_free = differ(groups["relu"], groups[SINK_BASELINE], SINK_SHARE) < 0
    ours = "; ".join(_sink_line(name, rs) for name, rs in groups.items()) + f"; {said}"
    verdict = ("reproduced" if relu_free else "partly") if sinks else "not reproduced"
    return ours + ("" if not sinks else f"; relu {'needs no' if relu_free else 'has a'} sink") + _deeper(ev), verdict


def _deeper(ev: Evidence) -> str:
    """The deeper models' most sink-like heads, shown beside the one-layer verdict (not judged)."""
    found = [r for r in rows(ev, "sinks") if r["model.num_layers"] != "1"]
    parts = [f"{layers} layers: " + ", ".join(f"{name} first-token weight {spread(rs, SINK_WEIGHT)} (share "
                                              f"{spread(rs, SINK_SHARE)})" for name, rs in sorted(by_variant(
                                                  [r for r in found if r["model.num_layers"] == layers]).items()))
             for layers in sorted({r["model.num_layers"] for r in found}, key=int)]
    return f"; deeper models (shown, not judged): {'; '.join(parts)}" if parts else ""


@claim("B3",
       "off-by-one softmax and softpick remove the attention sink; softpick and ReLA-g switch rows off",
       "Miller 2023 (softmax_1); Xiao et al. arXiv 2309.17453; Zuhri et al. arXiv 2504.20966",
       "softpick: 0% sink rate against softmax's heavy first-token attention",
       "Bigram-Backcopy, one layer, most seeds learned, the most sink-like head of each model; where softmax forms "
       "a dormant sink (B5 (a); if not, inconclusive): softmax_1's and softpick's weight on the first token at "
       f"dormant rows below softmax's (the seed rule); softpick's and rela_g's all-zero dormant rows above "
       f"{NULL_LEVEL} (the seed rule); all four: reproduced, some: partly; a variant not trained (rela_g at the "
       "quick profile) leaves its part unjudged: at most partly")
def judge_b3(ev: Evidence):
    groups = _sinks(ev, (SINK_BASELINE, *SINK_REMOVERS), optional=("rela_g",))
    sinks, said = _softmax_sinks(groups[SINK_BASELINE])
    ours = "; ".join(_sink_line(name, rs) for name, rs in groups.items()) + f"; {said}"
    if not sinks:
        raise Untestable(f"softmax formed no dormant sink to remove: {ours}")
    removed = [name for name in SINK_REMOVERS if differ(groups[name], groups[SINK_BASELINE], SINK_WEIGHT) < 0]
    trained = [name for name in NULL_VARIANTS if name in groups]
    null = [name for name in trained if compare([value(r, "sink.null_dormant") for r in groups[name]], NULL_LEVEL) > 0]
    unjudged = [name for name in NULL_VARIANTS if name not in groups]
    ours += (f"; sink removed by: {', '.join(removed) or 'neither'}; rows switched off by: "
             f"{', '.join(null) or 'neither'}")
    ours += f"; unjudged part of the claim: {', '.join(unjudged)} (not trained)" if unjudged else ""
    return ours, at_most_partly(grade(len(removed) + len(null), len(SINK_REMOVERS) + len(trained)), unjudged)
