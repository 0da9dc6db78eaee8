"""The claims of ../shared/PAPERS.md, each with the paper's number and a criterion computed from our results.

A claim's ``judge(evidence)`` returns ``(ours, verdict)``: a short string of
our numbers and one of ``reproduced``, ``partly``, ``not reproduced`` or
``not run`` (when the results it needs are missing). The evidence is what
``make all`` produces: the sweep CSVs (rows as dicts of strings), the theory
notebooks' verdict files, and the speed benchmark's CSV. Criteria are fixed
here, before looking at any result, and written into the ledger.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rows import group, value, variant  # noqa: E402

VERDICTS = ("reproduced", "partly", "not reproduced", "not run")


@dataclasses.dataclass
class Evidence:
    sweeps: dict[str, list[dict[str, str]]] = dataclasses.field(default_factory=dict)
    theory: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # verdict records of the notebooks
    speed: list[dict[str, str]] = dataclasses.field(default_factory=list)  # bench rows: variant, length, ratio


class Missing(Exception):
    """The results a criterion needs are not there: the verdict is ``not run``."""


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    source: str
    paper: str
    criterion: str
    judge: Callable[[Evidence], tuple[str, str]]

    def verdict(self, evidence: Evidence) -> tuple[str, str]:
        try:
            ours, verdict = self.judge(evidence)
        except Missing as missing:
            return f"missing: {missing}", "not run"
        assert verdict in VERDICTS, verdict
        return ours, verdict


# --- reading results ---------------------------------------------------------------------------

def rows(evidence: Evidence, sweep: str) -> list[dict[str, str]]:
    found = evidence.sweeps.get(sweep)
    if not found:
        raise Missing(f"sweep {sweep}")
    return found


def mean_of(rows_: list[dict[str, str]], column: str) -> float:
    values = [value(r, column) for r in rows_]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        raise Missing(f"column {column}")
    return mean(values)


def spread(rows_: list[dict[str, str]], column: str) -> str:
    values = [value(r, column) for r in rows_]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def theory_holds(evidence: Evidence, prefix: str) -> tuple[str, str]:
    records = [r for r in evidence.theory if r["claim"] == prefix or r["claim"].startswith(prefix + "-")]
    if not records:
        raise Missing(f"theory verdicts for {prefix}")
    held = [r["holds"] for r in records]
    ours = "; ".join(f"{r['ours']}" for r in records)
    verdict = "reproduced" if all(held) else ("partly" if any(held) else "not reproduced")
    return ours, verdict


def grade(passed: int, total: int) -> str:
    if total == 0:
        raise Missing("no comparisons")
    return "reproduced" if passed == total else ("partly" if passed else "not reproduced")


# --- the judges --------------------------------------------------------------------------------

def judge_r1(ev: Evidence):
    rela = [r for r in rows(ev, "heads") if variant(r) == "rela_g"]
    values = [value(r, "attn.sparsity.mean") for r in rela]
    if not values:
        raise Missing("rela_g runs in heads")
    verdict = "reproduced" if min(values) > 0.55 else ("partly" if mean(values) > 0.52 else "not reproduced")
    return f"trained ReLA-g sparsity {spread(rela, 'attn.sparsity.mean')} (init 0.50)", verdict


def _stability(ev: Evidence):
    table = {}
    for row in rows(ev, "stability"):
        table.setdefault(variant(row), []).append(row)
    if "relu" not in table:
        raise Missing("plain relu runs")
    stats = {name: (mean(value(r, "test_accuracy") for r in rs), sum(r["status"] == "diverged" for r in rs), len(rs))
             for name, rs in table.items()}
    return stats


def _more_stable(stats, better: str, worse: str = "relu") -> bool:
    (acc_b, div_b, _), (acc_w, div_w, _) = stats[better], stats[worse]
    return div_w > div_b or acc_w <= acc_b - 0.1


def _describe(stats, names):
    return ", ".join(f"{n} acc {stats[n][0]:.2f} diverged {stats[n][1]}/{stats[n][2]}" for n in names if n in stats)


def judge_r2(ev: Evidence):
    stats = _stability(ev)
    rivals = [n for n in ("rela_i", "rela_g") if n in stats]
    passed = sum(_more_stable(stats, n) for n in rivals)
    return _describe(stats, ["relu", *rivals]), grade(passed, len(rivals))


def judge_r3(ev: Evidence):
    groups = group(rows(ev, "alignment_aer"), "model.attention.name")
    if ("rela_g",) not in groups:
        raise Missing("rela_g runs in alignment_aer")
    accuracy = {name[0]: mean_of(rs, "test_accuracy") for name, rs in groups.items()}
    best_baseline = max(v for k, v in accuracy.items() if k != "rela_g")
    gap = best_baseline - accuracy["rela_g"]
    verdict = "reproduced" if gap <= 0.02 else ("partly" if gap <= 0.05 else "not reproduced")
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(accuracy.items())), verdict


def judge_r4(ev: Evidence):
    if not ev.speed:
        raise Missing("speed benchmark")
    ratio = defaultdict(list)
    for row in ev.speed:
        ratio[row["variant"]].append(float(row["ratio"]))
    need = ("rela_g", "sparsemax", "entmax15")
    if any(n not in ratio for n in need):
        raise Missing("benchmark rows for rela_g, sparsemax, entmax15")
    speed = {n: 1 / math.exp(mean(math.log(r) for r in ratio[n])) for n in need}  # speed relative to softmax
    checks = [speed["rela_g"] > speed["sparsemax"] and speed["rela_g"] > speed["entmax15"], speed["rela_g"] >= 1 / 1.5]
    return ", ".join(f"{n} {s:.2f}x" for n, s in speed.items()) + " (speed vs softmax, geometric mean over lengths)", \
        grade(sum(checks), 2)


def _heads_metric(ev: Evidence, column: str) -> dict[str, float]:
    return {name[0]: mean_of(rs, column) for name, rs in group(rows(ev, "heads"), "model.attention.name").items()}


def judge_r5(ev: Evidence):
    diversity = _heads_metric(ev, "attn.head_diversity.mean")
    if "rela_g" not in diversity:
        raise Missing("rela_g runs in heads")
    rivals = [k for k in diversity if k != "rela_g"]
    passed = sum(diversity["rela_g"] > diversity[k] for k in rivals)
    return ", ".join(f"{k} JS {v:.3f}" for k, v in sorted(diversity.items())), grade(passed, len(rivals))


def judge_r6(ev: Evidence):
    null = _heads_metric(ev, "attn.null_rate.max")
    if "rela_g" not in null:
        raise Missing("rela_g runs in heads")
    baselines_zero = all(v == 0 for k, v in null.items() if k != "rela_g")
    verdict = ("reproduced" if null["rela_g"] > 0.01 and baselines_zero
               else "partly" if null["rela_g"] > 0 else "not reproduced")
    return ", ".join(f"{k} max null rate {v:.3f}" for k, v in sorted(null.items())), verdict


def judge_r7(ev: Evidence):
    groups = group(rows(ev, "alignment_aer"), "task.reordering", "model.attention.name")
    orders = sorted({k[0] for k in groups})
    passed, parts = 0, []
    for order in orders:
        aer = {name: mean_of(rs, "aer") for (o, name), rs in groups.items() if o == order}
        if "rela_g" not in aer:
            raise Missing(f"rela_g on {order}")
        passed += all(aer["rela_g"] < v for k, v in aer.items() if k != "rela_g")
        parts.append(f"{order}: " + " ".join(f"{k} {v:.2f}" for k, v in sorted(aer.items())))
    return "; ".join(parts), grade(passed, len(orders))


def _memory(ev: Evidence):
    groups = group(rows(ev, "memory"), "model.mlp_activation", "model.mlp_ratio")
    return {(act, int(ratio)): rs for (act, ratio), rs in groups.items()}


def judge_s2(ev: Evidence):
    ours_theory, theory_verdict = theory_holds(ev, "S2")
    memory = _memory(ev)
    largest = max(r for _, r in memory)
    acc = {act: mean_of(memory[(act, largest)], "test_accuracy") for act in ("relu", "softmax", "softmax_ln")
           if (act, largest) in memory}
    if len(acc) < 3:
        raise Missing("relu, softmax and softmax_ln memories")
    empirical = acc["softmax_ln"] >= acc["softmax"] and abs(acc["relu"] - acc["softmax_ln"]) <= 0.05
    verdict = "reproduced" if theory_verdict == "reproduced" and empirical else (
        "partly" if theory_verdict == "reproduced" or empirical else "not reproduced")
    return f"{ours_theory}; memorisation at {largest}x slots: " + ", ".join(
        f"{k} {v:.3f}" for k, v in acc.items()), verdict


def judge_s3(ev: Evidence):
    memory = _memory(ev)
    ratios = sorted({r for _, r in memory})
    passed, parts = 0, []
    for ratio in ratios:
        if ("relu", ratio) not in memory or ("softmax", ratio) not in memory:
            raise Missing(f"relu and softmax at ratio {ratio}")
        relu, soft = mean_of(memory[("relu", ratio)], "test_accuracy"), mean_of(memory[("softmax", ratio)], "test_accuracy")
        passed += relu >= soft
        parts.append(f"{ratio}x: relu {relu:.3f} softmax {soft:.3f}")
    return "; ".join(parts), grade(passed, len(ratios))


def judge_s4(ev: Evidence):
    stats = _stability(ev)
    if "reluformer" not in stats:
        raise Missing("reluformer runs")
    scaled = _more_stable(stats, "reluformer")
    regularised = "reluformer+reg" in stats and stats["reluformer+reg"][0] > stats["reluformer"][0]
    verdict = "reproduced" if scaled and regularised else ("partly" if scaled or regularised else "not reproduced")
    return _describe(stats, ["relu", "reluformer", "reluformer+reg"]), verdict


def judge_s5(ev: Evidence):
    groups = group(rows(ev, "long_context"), "task.seq_len", "model.attention.name")
    lengths = sorted({int(k[0]) for k in groups})
    longest = str(lengths[-1])
    if (longest, "softmax") not in groups or (longest, "reluformer") not in groups:
        raise Missing("softmax and reluformer at the longest length")
    soft, relu = mean_of(groups[(longest, "softmax")], "test_accuracy"), mean_of(groups[(longest, "reluformer")],
                                                                                "test_accuracy")
    # a tie only counts (as partly) when the models learned the task; two models at chance show nothing
    if relu >= soft + 0.02:
        verdict = "reproduced"
    elif abs(relu - soft) < 0.02 and max(relu, soft) >= 0.5:
        verdict = "partly"
    else:
        verdict = "not reproduced"
    return f"length {longest}: reluformer {relu:.3f}, softmax {soft:.3f}", verdict


def judge_s6(ev: Evidence):
    memory = _memory(ev)
    softmax = [r for (act, _), rs in memory.items() if act == "softmax" for r in rs]
    if not softmax:
        raise Missing("softmax memories")
    share = mean_of(softmax, "ffn_top_mass")
    verdict = "reproduced" if share > 0.85 else ("partly" if share > 0.5 else "not reproduced")
    return f"top 0.2% of slots hold {share:.3f} of the softmax FFN mass", verdict


def judge_d1(ev: Evidence):
    groups = group(rows(ev, "mqar_pairs"), "task.num_kv_pairs", "model.attention.name")
    pairs = sorted({int(k[0]) for k in groups})
    gaps = []
    for n in pairs:
        if (str(n), "softmax") not in groups or (str(n), "linear") not in groups:
            raise Missing(f"softmax and linear at {n} pairs")
        gaps.append(mean_of(groups[(str(n), "softmax")], "test_accuracy")
                    - mean_of(groups[(str(n), "linear")], "test_accuracy"))
    positive = all(g >= 0 for g in gaps) and max(gaps) > 0.05
    grows = gaps[-1] > gaps[0] or max(gaps) > gaps[0] + 0.05
    ours = ", ".join(f"N={n}: {g:+.3f}" for n, g in zip(pairs, gaps))
    return "softmax - linear accuracy " + ours, grade(positive + grows, 2)


def theory_judge(prefix: str) -> Callable[[Evidence], tuple[str, str]]:
    return lambda ev: theory_holds(ev, prefix)


CLAIMS = [
    Claim("R1", "sparsity emerges in ReLA (above the 50% of random scores)", "ReLA, arXiv 2104.07012",
          "sparsity rises during training (e.g. >90% in the paper's figures)",
          "mean sparsity of trained ReLA-g > 0.55 in every seed (partly: > 0.52 on average)", judge_r1),
    Claim("R2", "ReLU attention needs the output norm to train stably", "ReLA, arXiv 2104.07012",
          "unnormalised ReLU unstable; ReLA-i / ReLA-g stable",
          "plain relu diverges more often or is >= 0.1 less accurate than each of rela_i, rela_g "
          "(all: reproduced; one: partly)", judge_r2),
    Claim("R3", "ReLA's quality is comparable to softmax, sparsemax, 1.5-entmax", "ReLA, arXiv 2104.07012",
          "BLEU En-Fr 37.2/37.3/37.9/37.9 (softmax/sparsemax/entmax/ReLA) and 3 more tasks",
          "alignment-task accuracy of rela_g within 0.02 of the best baseline (partly: 0.05)", judge_r3),
    Claim("R4", "ReLA is nearly as fast as softmax, sparsemax and entmax much slower", "ReLA, arXiv 2104.07012",
          "training speed vs softmax: ReLA 0.93x, sparsemax 0.26x, 1.5-entmax 0.27x",
          "rela_g faster than sparsemax and entmax15, and at least 1/1.5 of softmax's speed", judge_r4),
    Claim("R5", "ReLA heads are more diverse", "ReLA, arXiv 2104.07012", "higher JS divergence across heads",
          "JS across heads of rela_g above each of softmax, sparsemax, entmax15", judge_r5),
    Claim("R6", "ReLA heads switch off (null attention)", "ReLA, arXiv 2104.07012",
          "some heads give all-zero rows; impossible for normalised maps",
          "rela_g's largest per-head null-row rate > 0.01 and every baseline's = 0", judge_r6),
    Claim("R7", "ReLA's cross-attention aligns better", "ReLA, arXiv 2104.07012", "lower AER than sparsified softmax",
          "best-head AER of rela_g below every baseline's, per reordering (all: reproduced)", judge_r7),
    Claim("S1", "output variance: softmax e^{s^2}/n, ReLU n s^2/2, ReLU/sqrt(n/2) Theta(1)",
          "ReLUFormer, arXiv 2302.06461", "derivation", "every check of theory/variance.py holds",
          theory_judge("S1")),
    Claim("S2", "softmax + LayerNorm behaves like ReLU", "ReLUFormer, arXiv 2302.06461",
          "IWSLT De-En BLEU: ReLU FFN 34.22, softmax 33.08, softmax+LN 34.21",
          "KS test of theory/variance.py holds, and on memorisation softmax_ln >= softmax and within 0.05 of relu",
          judge_s2),
    Claim("S3", "ReLU beats softmax as the FFN memory at every size", "ReLUFormer, arXiv 2302.06461",
          "ReLU > softmax for hidden sizes 32..4096", "relu accuracy >= softmax accuracy at every slot count",
          judge_s3),
    Claim("S4", "plain ReLU self-attention does not converge; the variance factor fixes it",
          "ReLUFormer, arXiv 2302.06461", "regularisers add about 1.4 BLEU",
          "reluformer more stable than relu (as in R2); reluformer+reg more accurate than reluformer", judge_s4),
    Claim("S5", "ReLU attention is better on long sequences", "ReLUFormer, arXiv 2302.06461",
          "+1.15 BLEU at length 1024", "reluformer accuracy >= softmax's + 0.02 at the longest length (partly: within "
          "0.02 with both >= 0.5; a tie at chance is not reproduced)", judge_s5),
    Claim("S6", "a trained softmax FFN concentrates its mass", "ReLUFormer, arXiv 2302.06461",
          "top 0.2% of entries hold > 85% of the mass", "top 0.2% of slots hold > 0.85 of the softmax FFN's "
          "activation mass (partly: > 0.5)", judge_s6),
    Claim("D1", "softmax beats linear attention on recall; the gap grows with the pairs",
          "Deng, Song, Zhou, arXiv 2310.11685", "theory (no number)",
          "softmax - linear MQAR accuracy >= 0 everywhere and > 0.05 somewhere; larger at more pairs", judge_d1),
    Claim("D2", "a planted score separates softmax from linear attention", "Deng, Song, Zhou, arXiv 2310.11685",
          "derivation", "every check of theory/separation.py holds", theory_judge("D2")),
    Claim("K1", "rank bounds of linear, softmax and log-softmax attention", "PAPERS.md K1 (Bhojanapalli 2002.07028)",
          "derivation", "every check of theory/rank.py holds", theory_judge("K1")),
    Claim("K2", "linear attention's recall is capped by its feature dimension", "Schlag et al. 2102.11174; Zoology",
          "(N - m)_+ d_v read-out error", "every check of theory/capacity.py holds", theory_judge("K2")),
    Claim("K3", "rank collapse without skips; zero Q/K gradients at collapse", "Dong et al. 2103.03404; Noci et al.",
          "derivation", "every check of theory/rank_collapse.py holds", theory_judge("K3")),
    Claim("Q1", "normalised-attention gradients: softmax <= 1/4, linear unbounded", "Qin et al. 2210.10340",
          "derivation", "every check of theory/gradients.py holds", theory_judge("Q1")),
    Claim("H1", "linear attention is not injective; softmax and InLine are", "Han et al. 2412.06590",
          "derivation", "every check of theory/injectivity.py holds", theory_judge("H1")),
    Claim("SCALE", "sigmoid with b = -log n and ReLU / n scaling rules", "Ramapuram et al. 2409.04431; "
          "Wortsman et al. 2309.08586", "row sum -> e^{s^2/2}; variance s^2/(2n)",
          "every scaling check of theory/variance.py holds", theory_judge("SCALE")),
]
