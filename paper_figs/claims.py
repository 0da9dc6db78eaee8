"""The claims of docs/claims.md, each with the paper's number and a criterion computed from our results.

A claim's ``judge(evidence)`` returns ``(ours, verdict)``: a short string of
our numbers and one of ``reproduced``, ``partly``, ``not reproduced``,
``inconclusive`` or ``not run`` (when the results it needs are missing).

A trained verdict needs trained models. Every sweep row says whether its run
*learned* (test accuracy at least halfway from the task's chance level to
its ceiling, 1 unless stated; ``experiments.runs.learning``). A criterion first checks that the
runs it compares learned (:func:`learned`); where they did not, the verdict
is ``inconclusive`` and ``ours`` says which runs stayed below their
threshold, never ``reproduced`` or ``not reproduced``. Two groups of seeds
differ only when their means differ by more than the spread (max - min) of
either group (:func:`differ`): a smaller difference is a tie. The evidence is what
``make all`` produces: the sweep CSVs (rows as dicts of strings), the theory
notebooks' verdict files, and the speed benchmark's JSON report. Criteria are fixed
here, before looking at any result, and written into the ledger.

The judges of the trained claims live beside the sweep they read:
:mod:`~paper_figs.claims_heads` (R1, R5, R6), :mod:`~paper_figs.claims_stability`
(R2, S4), :mod:`~paper_figs.claims_alignment` (R3, R7),
:mod:`~paper_figs.claims_memory` (S2, S3, S3b, S6), :mod:`~paper_figs.claims_recall`
(S5, D1) and :mod:`~paper_figs.claims_beyond` (B1-B5); this module holds the speed
claim (R4) and the theory claims, and imports the others so that every claim is
registered once, in the order of ``CLAIM_IDS``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean

from paper_figs._rows import value  # noqa: F401 - re-exported
from paper_figs._judging import (BEYOND_IDS, CLAIM_IDS, CLAIMS, LEDGER_SWEEPS, MIN_SEEDS,  # noqa: F401 - re-exported
                                 VERDICTS, DidNotLearn, Evidence, Missing, TooFewSeeds, Untestable, by_variant, claim,
                                 compare, differ, grade, learned, mean_of, require_learned, rows, spread,
                                 theory_holds, theory_judge)

# --- the judges: the speed benchmark's here, the trained ones beside their sweeps ---------------------------

@claim("R4",
       "ReLA is nearly as fast as softmax, sparsemax and entmax much slower",
       "ReLA, arXiv 2104.07012",
       "training speed vs (unfused) softmax: ReLA 0.93x, sparsemax 0.26x, 1.5-entmax 0.27x; decoding: ReLA 0.98x, "
          "sparsemax 0.54x, 1.5-entmax 0.49x",
       "forward+backward: rela_g faster than sparsemax and entmax15, and at least 1/1.5 of the materialised "
          "softmax's speed (the paper's baseline; PyTorch's fused SDPA reported beside it); decoding a token: "
          "rela_g at least 1/1.5 of softmax's speed and faster than sparsemax and entmax15; all three: reproduced")
def judge_r4(ev: Evidence):
    if not ev.speed:
        raise Missing("speed benchmark")
    ratio = defaultdict(list)
    for row in ev.speed:
        ratio[row["label"]].append(float(row["seconds_ratio"]))
    need = ("rela_g", "sparsemax", "entmax15", "softmax (materialised)")
    if any(n not in ratio for n in need):
        raise Missing("benchmark rows for " + ", ".join(need))
    speed = {n: 1 / math.exp(mean(math.log(r) for r in ratio[n])) for n in need}  # speed relative to SDPA
    against = {n: speed[n] / speed["softmax (materialised)"] for n in ("rela_g", "sparsemax", "entmax15")}
    decode = {row["variant"]: 1 / float(row["token_ratio"]) for row in ev.decoding}
    if any(n not in decode for n in ("rela_g", "sparsemax", "entmax15")):
        raise Missing("decoding rows for rela_g, sparsemax, entmax15 (rerun the speed benchmark)")
    checks = [against["rela_g"] > max(against["sparsemax"], against["entmax15"]), against["rela_g"] >= 1 / 1.5,
              decode["rela_g"] >= 1 / 1.5 and decode["rela_g"] > max(decode["sparsemax"], decode["entmax15"])]
    return ("training speed vs materialised softmax: " + ", ".join(f"{n} {s:.2f}x" for n, s in against.items())
            + f" (rela_g vs SDPA {speed['rela_g']:.2f}x; geometric mean over lengths); decoding speed vs softmax: "
            + ", ".join(f"{n} {decode[n]:.2f}x" for n in ("rela_g", "sparsemax", "entmax15"))), grade(sum(checks), 3)


# --- theory claims: their checks run in the notebooks, each writes a verdict file --------------------------

for _id, _claim, _source, _paper, _notebook in [
    ("S1", "output variance: softmax e^{s^2}/n, ReLU n s^2/2, ReLU/sqrt(n/2) Theta(1)", "ReLUFormer, arXiv 2302.06461",
     "derivation", "variance"),
    ("D2", "a planted score separates softmax from linear attention", "Deng, Song, Zhou, arXiv 2310.11685",
     "derivation", "separation"),
    ("K1", "rank bounds of linear, softmax and log-softmax attention", "Bhojanapalli et al. arXiv 2002.07028",
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

from paper_figs import (claims_alignment, claims_beyond, claims_heads, claims_memory,  # noqa: E402,F401 - register
                        claims_recall, claims_stability)

_registered = {c.id for c in CLAIMS}
if _registered != set(CLAIM_IDS):
    raise RuntimeError(f"claims registered {sorted(_registered)} differ from CLAIM_IDS {sorted(CLAIM_IDS)}")
CLAIMS.sort(key=lambda c: list(CLAIM_IDS).index(c.id))
