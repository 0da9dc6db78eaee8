"""The claims of ../shared/PAPERS.md, each with the paper's number and a criterion computed from our results.

A claim's ``judge(evidence)`` returns ``(ours, verdict)``: a short string of
our numbers and one of ``reproduced``, ``partly``, ``not reproduced``,
``inconclusive`` or ``not run`` (when the results it needs are missing).

A trained verdict needs trained models. Every sweep row says whether its run
*learned* (test accuracy at least halfway from the task's chance level to 1;
``experiments.runs.learning``). A criterion first checks that the
runs it compares learned (:func:`learned`); where they did not, the verdict
is ``inconclusive`` and ``ours`` says which runs stayed below their
threshold, never ``reproduced`` or ``not reproduced``. Two groups of seeds
differ only when their means differ by more than the spread (max - min) of
either group (:func:`differ`): a smaller difference is a tie. The evidence is what
``make all`` produces: the sweep CSVs (rows as dicts of strings), the theory
notebooks' verdict files, and the speed benchmark's JSON report. Criteria are fixed
here, before looking at any result, and written into the ledger.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean

from paper_figs._rows import group, value, variant
from paper_figs._judging import (BEYOND_IDS, CLAIM_IDS, CLAIMS, LEDGER_SWEEPS, VERDICTS,  # noqa: F401 - re-exported
                                 DidNotLearn, Evidence, Missing, by_variant, claim, differ, grade, learned, mean_of,
                                 require_learned, rows, spread, theory_holds, theory_judge)

# --- the judges --------------------------------------------------------------------------------

@claim("R1",
       "sparsity emerges in ReLA (above the 50% of random scores)",
       "ReLA, arXiv 2104.07012",
       "sparsity rises during training (e.g. >90% in the paper's figures)",
       "every ReLA-g run learned; its mean sparsity > 0.55 in every seed (partly: > 0.52 on average)")
def judge_r1(ev: Evidence):
    rela = by_variant(rows(ev, "heads")).get("rela_g")
    if not rela:
        raise Missing("rela_g runs in heads")
    require_learned({"rela_g": rela})
    values = [value(r, "attn.sparsity.mean") for r in rela]
    verdict = "reproduced" if min(values) > 0.55 else ("partly" if mean(values) > 0.52 else "not reproduced")
    return f"trained ReLA-g sparsity {spread(rela, 'attn.sparsity.mean')} (init 0.50)", verdict


def _stability(ev: Evidence) -> dict[tuple[str, str], list[dict[str, str]]]:
    """Runs by (variant, learning rate)."""
    table: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows(ev, "stability"):
        table[(variant(row), row["train.lr"])].append(row)
    if not any(name == "relu" for name, _ in table):
        raise Missing("plain relu runs")
    return table


def _diverged(rows_) -> int:
    return sum(r["status"] == "diverged" for r in rows_)


def _less_stable(table, worse: str, better: str) -> tuple[bool, list[str]]:
    """Whether ``worse`` trains worse than ``better`` at some learning rate where ``better`` learned.

    Worse at a learning rate: more of its seeds diverge, or some seed does not
    learn. (Final accuracies are not compared: runs stop at a target accuracy,
    so among runs that learned they differ by noise around the target.)
    Raises :class:`DidNotLearn` if ``better`` learned at no learning rate.
    """
    lrs = sorted({lr for name, lr in table if name == better}, key=float)
    learned_at = [lr for lr in lrs if learned(table[(better, lr)])]
    if not learned_at:
        raise DidNotLearn(f"{better} at every learning rate ({', '.join(lrs)})")
    worse_at = []
    for lr in learned_at:
        a, b = table.get((worse, lr)), table[(better, lr)]
        if not a:
            raise Missing(f"{worse} at lr {lr}")
        if _diverged(a) > _diverged(b) or not learned(a):
            worse_at.append(lr)
    return bool(worse_at), worse_at


def _describe(table, names) -> str:
    parts = []
    for name in names:
        cells = [f"{lr}: acc {mean_of(rs, 'test_accuracy'):.2f} div {_diverged(rs)}/{len(rs)}"
                 for (n, lr), rs in sorted(table.items(), key=lambda kv: float(kv[0][1])) if n == name]
        if cells:
            parts.append(f"{name} ({'; '.join(cells)})")
    return ", ".join(parts)


@claim("R2",
       "ReLU attention needs the output norm to train stably",
       "ReLA, arXiv 2104.07012",
       "unnormalised ReLU unstable; ReLA-i / ReLA-g stable",
       "at some learning rate where rela_i (rela_g) learned in every seed, plain relu diverges in more seeds or "
          "fails to learn in some seed; both: reproduced, one: partly")
def judge_r2(ev: Evidence):
    table = _stability(ev)
    rivals = [n for n in ("rela_i", "rela_g") if any(name == n for name, _ in table)]
    passed = sum(_less_stable(table, "relu", n)[0] for n in rivals)
    return _describe(table, ["relu", *rivals]), grade(passed, len(rivals))


def _alignment(ev: Evidence) -> dict[tuple[str, str], list[dict[str, str]]]:
    found = group(rows(ev, "alignment_aer"), "task.reordering", "model.attention.name")
    if not any(name == "rela_g" for _, name in found):
        raise Missing("rela_g runs in alignment_aer")
    require_learned({f"{name} on {order}": rs for (order, name), rs in found.items()})
    return found


@claim("R3",
       "ReLA's quality is comparable to softmax, sparsemax, 1.5-entmax",
       "ReLA, arXiv 2104.07012",
       "BLEU En-Fr 37.2/37.3/37.9/37.9 (softmax/sparsemax/entmax/ReLA) and 3 more tasks",
       "all runs learned; alignment-task accuracy of rela_g tied with (max(seed spread, 0.02)) or above the best "
          "baseline (partly: within 0.05)")
def judge_r3(ev: Evidence):
    found = _alignment(ev)
    by_name: dict[str, list] = defaultdict(list)
    for (_, name), rs in found.items():
        by_name[name].extend(rs)
    accuracy = {name: mean_of(rs, "test_accuracy") for name, rs in by_name.items()}
    best = max((k for k in accuracy if k != "rela_g"), key=accuracy.get)
    gap = accuracy[best] - accuracy["rela_g"]
    tie = differ(by_name[best], by_name["rela_g"], "test_accuracy", margin=0.02) <= 0
    verdict = "reproduced" if tie else ("partly" if gap <= 0.05 else "not reproduced")
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(accuracy.items())), verdict


@claim("R4",
       "ReLA is nearly as fast as softmax, sparsemax and entmax much slower",
       "ReLA, arXiv 2104.07012",
       "training speed vs softmax: ReLA 0.93x, sparsemax 0.26x, 1.5-entmax 0.27x",
       "rela_g faster than sparsemax and entmax15, and at least 1/1.5 of softmax's speed")
def judge_r4(ev: Evidence):
    if not ev.speed:
        raise Missing("speed benchmark")
    ratio = defaultdict(list)
    for row in ev.speed:
        ratio[row["label"]].append(float(row["seconds_ratio"]))
    need = ("rela_g", "sparsemax", "entmax15")
    if any(n not in ratio for n in need):
        raise Missing("benchmark rows for rela_g, sparsemax, entmax15")
    speed = {n: 1 / math.exp(mean(math.log(r) for r in ratio[n])) for n in need}  # speed relative to softmax
    checks = [speed["rela_g"] > speed["sparsemax"] and speed["rela_g"] > speed["entmax15"], speed["rela_g"] >= 1 / 1.5]
    return ", ".join(f"{n} {s:.2f}x" for n, s in speed.items()) + " (speed vs softmax, geometric mean over lengths)", \
        grade(sum(checks), 2)


def _heads(ev: Evidence) -> dict[str, list[dict[str, str]]]:
    found = by_variant(rows(ev, "heads"))
    if "rela_g" not in found:
        raise Missing("rela_g runs in heads")
    require_learned(found)
    return found


@claim("R5",
       "ReLA heads are more diverse",
       "ReLA, arXiv 2104.07012",
       "higher JS divergence across heads",
       "all runs learned; JS across heads of rela_g above each of softmax, sparsemax, entmax15 beyond the seed "
          "spread")
def judge_r5(ev: Evidence):
    found = _heads(ev)
    column = "attn.head_diversity.mean"
    rivals = [k for k in found if k != "rela_g"]
    passed = sum(differ(found["rela_g"], found[k], column) > 0 for k in rivals)
    return ", ".join(f"{k} JS {spread(rs, column)}" for k, rs in sorted(found.items())), grade(passed, len(rivals))


@claim("R6",
       "ReLA heads switch off (null attention)",
       "ReLA, arXiv 2104.07012",
       "some heads give all-zero rows; impossible for normalised maps",
       "all runs learned; rela_g's largest per-head null-row rate > 0.01 in every seed and every baseline's = 0")
def judge_r6(ev: Evidence):
    found = _heads(ev)
    null = {k: max(value(r, "attn.null_rate.max") for r in rs) for k, rs in found.items()}
    lowest_rela = min(value(r, "attn.null_rate.max") for r in found["rela_g"])
    baselines_zero = all(v == 0 for k, v in null.items() if k != "rela_g")
    verdict = ("reproduced" if lowest_rela > 0.01 and baselines_zero
               else "partly" if null["rela_g"] > 0 else "not reproduced")
    return ", ".join(f"{k} max null rate {v:.3f}" for k, v in sorted(null.items())), verdict


@claim("R7",
       "ReLA's cross-attention aligns better",
       "ReLA, arXiv 2104.07012",
       "lower AER than sparsified softmax",
       "all runs learned; best-head AER of rela_g below every baseline's beyond the seed spread, per reordering "
          "(all: reproduced)")
def judge_r7(ev: Evidence):
    found = _alignment(ev)
    orders = sorted({order for order, _ in found})
    passed, parts = 0, []
    for order in orders:
        here = {name: rs for (o, name), rs in found.items() if o == order}
        if "rela_g" not in here:
            raise Missing(f"rela_g on {order}")
        passed += all(differ(here["rela_g"], rs, "aer") < 0 for k, rs in here.items() if k != "rela_g")
        parts.append(f"{order}: " + " ".join(f"{k} {mean_of(rs, 'aer'):.2f}" for k, rs in sorted(here.items())))
    return "; ".join(parts), grade(passed, len(orders))


def _memory(ev: Evidence):
    groups = group(rows(ev, "memory"), "model.mlp_activation", "model.mlp_ratio")
    return {(act, int(ratio)): rs for (act, ratio), rs in groups.items()}


@claim("S2",
       "softmax + LayerNorm behaves like ReLU",
       "ReLUFormer, arXiv 2302.06461",
       "IWSLT De-En BLEU: ReLU FFN 34.22, softmax 33.08, softmax+LN 34.21",
       "KS test of theory/variance.py holds, and at the most slots (relu, softmax_ln learned) softmax_ln not below "
          "softmax and tied with relu (max(seed spread, 0.05))")
def judge_s2(ev: Evidence):
    ours_theory, theory_verdict = theory_holds(ev, "S2")
    memory = _memory(ev)
    largest = max(r for _, r in memory)
    here = {act: memory[(act, largest)] for act in ("relu", "softmax", "softmax_ln") if (act, largest) in memory}
    if len(here) < 3:
        raise Missing("relu, softmax and softmax_ln memories")
    require_learned({f"{act} at {largest}x slots": rs for act, rs in here.items() if act != "softmax"})
    acc = {act: mean_of(rs, "test_accuracy") for act, rs in here.items()}
    empirical = (differ(here["softmax_ln"], here["softmax"], "test_accuracy") >= 0
                 and differ(here["relu"], here["softmax_ln"], "test_accuracy", margin=0.05) == 0)
    verdict = "reproduced" if theory_verdict == "reproduced" and empirical else (
        "partly" if theory_verdict == "reproduced" or empirical else "not reproduced")
    return f"{ours_theory}; memorisation at {largest}x slots: " + ", ".join(
        f"{k} {v:.3f}" for k, v in acc.items()), verdict


@claim("S3",
       "ReLU beats softmax as the FFN memory at every size",
       "ReLUFormer, arXiv 2302.06461",
       "ReLU > softmax for hidden sizes 32..4096",
       "relu above softmax beyond the seed spread at every slot count "
          "where either learned (some: partly)")
def judge_s3(ev: Evidence):
    memory = _memory(ev)
    ratios = sorted({r for _, r in memory})
    passed, compared, parts = 0, 0, []
    for ratio in ratios:
        if ("relu", ratio) not in memory or ("softmax", ratio) not in memory:
            raise Missing(f"relu and softmax at ratio {ratio}")
        relu, soft = memory[("relu", ratio)], memory[("softmax", ratio)]
        note = f"{ratio}x: relu {mean_of(relu, 'test_accuracy'):.3f} softmax {mean_of(soft, 'test_accuracy'):.3f}"
        if not (learned(relu) or learned(soft)):  # neither stored the table: nothing to compare at this size
            parts.append(note + " (neither learned)")
            continue
        compared += 1
        passed += differ(relu, soft, "test_accuracy") > 0
        parts.append(note)
    if not compared:
        raise DidNotLearn("neither memory learned at any size; " + "; ".join(parts))
    return "; ".join(parts), grade(passed, compared)


@claim("S4",
       "plain ReLU self-attention does not converge; the variance factor fixes it",
       "ReLUFormer, arXiv 2302.06461",
       "regularisers add about 1.4 BLEU",
       "reluformer more stable than relu (as in R2); reluformer+reg more accurate than reluformer beyond the seed "
          "spread where it learned; both: reproduced, one: partly")
def judge_s4(ev: Evidence):
    table = _stability(ev)
    if not any(name == "reluformer" for name, _ in table):
        raise Missing("reluformer runs")
    scaled, _ = _less_stable(table, "relu", "reluformer")
    lrs = [lr for name, lr in table if name == "reluformer+reg" and learned(table[(name, lr)])
           and ("reluformer", lr) in table]
    regularised = any(differ(table[("reluformer+reg", lr)], table[("reluformer", lr)], "test_accuracy") > 0
                      for lr in lrs)
    verdict = "reproduced" if scaled and regularised else ("partly" if scaled or regularised else "not reproduced")
    return _describe(table, ["relu", "reluformer", "reluformer+reg"]), verdict


@claim("S5",
       "ReLU attention is better on long sequences",
       "ReLUFormer, arXiv 2302.06461",
       "+1.15 BLEU at length 1024",
       "at the longest length where either learned, reluformer above softmax beyond "
          "max(seed spread, 0.02) (a tie: partly); neither learned anywhere: inconclusive")
def judge_s5(ev: Evidence):
    groups = group(rows(ev, "long_context"), "task.seq_len", "model.attention.name")
    lengths = sorted({int(k[0]) for k in groups})
    compared = []
    for length in lengths:
        soft, relu = groups.get((str(length), "softmax")), groups.get((str(length), "reluformer"))
        if not soft or not relu:
            raise Missing(f"softmax and reluformer at length {length}")
        if learned(soft) or learned(relu):
            compared.append((length, relu, soft))
    if not compared:
        raise DidNotLearn("neither softmax nor reluformer learned at any length ("
                          + ", ".join(f"{n}" for n in lengths) + ")")
    length, relu, soft = compared[-1]  # the longest length at which either learned
    order = differ(relu, soft, "test_accuracy", margin=0.02)
    verdict = {1: "reproduced", 0: "partly", -1: "not reproduced"}[order]
    return (f"length {length} (longest where either learned): reluformer {spread(relu, 'test_accuracy')}, "
            f"softmax {spread(soft, 'test_accuracy')}"), verdict


@claim("S6",
       "a trained softmax FFN concentrates its mass",
       "ReLUFormer, arXiv 2302.06461",
       "top 0.2% of entries hold > 85% of the mass",
       "in the softmax FFNs that learned, the top 0.2% of slots hold "
          "> 0.85 of the activation mass (partly: > 0.5)")
def judge_s6(ev: Evidence):
    memory = _memory(ev)
    softmax = [r for (act, _), rs in memory.items() if act == "softmax" for r in rs]
    if not softmax:
        raise Missing("softmax memories")
    trained = [r for r in softmax if r["learned"] == "1"]
    if not trained:
        raise DidNotLearn(f"no softmax memory learned (acc {spread(softmax, 'test_accuracy')})")
    share = mean_of(trained, "ffn_top_mass")
    verdict = "reproduced" if share > 0.85 else ("partly" if share > 0.5 else "not reproduced")
    return f"top 0.2% of slots hold {share:.3f} of the softmax FFN mass ({len(trained)} learned runs)", verdict


@claim("D1",
       "softmax beats linear attention on recall; the gap grows with the pairs",
       "Deng, Song, Zhou, arXiv 2310.11685",
       "theory (no number)",
       "where either learned: softmax never below linear and above it somewhere (beyond the seed spread); the gap "
          "larger at the most pairs than at the fewest")
def judge_d1(ev: Evidence):
    groups = group(rows(ev, "mqar_pairs"), "task.num_kv_pairs", "model.attention.name")
    pairs = sorted({int(k[0]) for k in groups})
    compared, parts = [], []
    for n in pairs:
        soft, lin = groups.get((str(n), "softmax")), groups.get((str(n), "linear"))
        if not soft or not lin:
            raise Missing(f"softmax and linear at {n} pairs")
        gap = mean_of(soft, "test_accuracy") - mean_of(lin, "test_accuracy")
        if learned(soft) or learned(lin):
            compared.append((n, differ(soft, lin, "test_accuracy"), gap))
            parts.append(f"N={n}: {gap:+.3f}")
        else:
            parts.append(f"N={n}: neither learned")
    if not compared:
        raise DidNotLearn("neither softmax nor linear learned at any pair count")
    positive = all(order >= 0 for _, order, _ in compared) and any(order > 0 for _, order, _ in compared)
    grows = compared[-1][2] > compared[0][2] and compared[-1][1] > 0
    return "softmax - linear accuracy " + ", ".join(parts), grade(positive + grows, 2)


# --- theory claims: their checks run in the notebooks, each writes a verdict file --------------------------

for _id, _claim, _source, _paper, _notebook in [
    ("S1", "output variance: softmax e^{s^2}/n, ReLU n s^2/2, ReLU/sqrt(n/2) Theta(1)", "ReLUFormer, arXiv 2302.06461",
     "derivation", "variance"),
    ("D2", "a planted score separates softmax from linear attention", "Deng, Song, Zhou, arXiv 2310.11685",
     "derivation", "separation"),
    ("K1", "rank bounds of linear, softmax and log-softmax attention", "PAPERS.md K1 (Bhojanapalli 2002.07028)",
     "derivation", "rank"),
    ("K2", "linear attention's recall is capped by its feature dimension", "Schlag et al. 2102.11174; Zoology",
     "(N - m)_+ d_v read-out error", "capacity"),
    ("K3", "rank collapse without skips; zero Q/K gradients at collapse", "Dong et al. 2103.03404; Noci et al.",
     "derivation", "rank_collapse"),
    ("Q1", "normalised-attention gradients: softmax <= 1/4, linear unbounded", "Qin et al. 2210.10340",
     "derivation", "gradients"),
    ("H1", "linear attention is not injective; softmax and InLine are", "Han et al. 2412.06590",
     "derivation", "injectivity"),
]:
    claim(_id, _claim, _source, _paper, f"every check of theory/{_notebook}.py holds")(theory_judge(_id))
claim("SCALE", "sigmoid with b = -log n and ReLU / n scaling rules",
      "Ramapuram et al. 2409.04431; Wortsman et al. 2309.08586", "row sum -> e^{s^2/2}; variance s^2/(2n)",
      "every scaling check of theory/variance.py holds")(theory_judge("SCALE"))

from paper_figs import claims_beyond  # noqa: E402,F401 - registers B1-B4 with the helpers above

_registered = {c.id for c in CLAIMS}
if _registered != set(CLAIM_IDS):
    raise RuntimeError(f"claims registered {sorted(_registered)} differ from CLAIM_IDS {sorted(CLAIM_IDS)}")
CLAIMS.sort(key=lambda c: list(CLAIM_IDS).index(c.id))
