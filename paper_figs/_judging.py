"""The ledger's machinery: evidence, claims and their registration, the verdicts, and the helpers every
judge uses to read sweep rows (seed groups, learned runs, ties within the seed spread). The judges live in
the ``paper_figs.claims_*`` modules, each beside the sweep it reads; :mod:`paper_figs.claims` registers them
and states the rules they follow."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable
from statistics import mean, median
from typing import Any

from paper_figs._rows import value, variant

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not run")
LEDGER_SWEEPS = ("mqar_pairs", "stability", "heads", "alignment_aer", "memory", "long_context",
                 "length_gen", "sinks")  # what the judges read


@dataclasses.dataclass
class Evidence:
    sweeps: dict[str, list[dict[str, str]]] = dataclasses.field(default_factory=dict)
    theory: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # verdict records of the notebooks
    speed: list[dict[str, str]] = dataclasses.field(default_factory=list)  # bench rows: variant, length, ratio
    decoding: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # bench rows: variant, token_ratio


class Missing(Exception):
    """The results a criterion needs are not there: the verdict is ``not run``."""


class DidNotLearn(Exception):
    """The runs a criterion compares stayed below their learned threshold: the verdict is ``inconclusive``."""


class Untestable(Exception):
    """The runs learned, but the effect a claim improves on is absent from the baseline (no sink to remove,
    no fading to repair): the verdict is ``inconclusive``, with the measurement that shows it."""


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
        except DidNotLearn as reason:
            return f"did not learn: {reason}", "inconclusive"
        except Untestable as reason:
            return f"untestable: {reason}", "inconclusive"
        except TooFewSeeds as reason:
            return f"too few seeds: {reason}", "inconclusive"
        except (KeyError, ValueError, TypeError) as error:  # a damaged or planted CSV: rows of another shape
            return f"missing: the rows are not of the shape this claim reads ({type(error).__name__}: " \
                   f"{str(error)[:80]})", "not run"
        assert verdict in VERDICTS, verdict
        return ours, verdict


# The claim ids of docs/claims.md with its headings (kept here so that the code
# still checks its ledger), plus SCALE from its scaling section and the "beyond the seeds" block (B1-B5,
# claims of the later papers, judged in claims_beyond.py); the ledger lists them in this order.
CLAIM_IDS = {
    "R1": "sparsity emerges", "R2": "stability needs normalisation", "R3": "quality comparable", "R4": "speed",
    "R5": "head diversity", "R6": "null attention", "R7": "alignment",
    "S1": "variance", "S2": "softmax + LN ~ ReLU", "S3": "many slots", "S3b": "many slots, with LayerNorm",
    "S4": "plain ReLU self-attention does not converge", "S5": "long sequences", "S6": "concentration",
    "D1": "softmax beats linear", "D2": "separation",
    "K1": "rank", "K2": "capacity", "K3": "rank collapse", "Q1": "gradients", "H1": "injectivity",
    "SCALE": "sigmoid and ReLU scaling rules",
    "B1": "attention fading", "B2": "length generalisation", "B3": "sinks and null attention",
    "B4": "gradient bounds of the newer normalisations", "B5": "active and dormant heads",
}
BEYOND_IDS = ("B1", "B2", "B3", "B4", "B5")  # the papers after the seed three
CLAIMS: list[Claim] = []


def claim(id: str, claim: str, source: str, paper: str, criterion: str):
    """Register the decorated judge as claim ``id`` (one of :data:`CLAIM_IDS`): the claim in words, its
    source, the paper's number and our criterion in words, next to the code that computes it."""
    if id not in CLAIM_IDS or any(c.id == id for c in CLAIMS):
        raise ValueError(f"claim {id!r} is not in CLAIM_IDS or is registered twice")

    def register(judge: Callable[[Evidence], tuple[str, str]]) -> Callable[[Evidence], tuple[str, str]]:
        CLAIMS.append(Claim(id, claim, source, paper, criterion, judge))
        return judge

    return register


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


def learned(rows_: list[dict[str, str]]) -> bool:
    """Most runs of a group learned their task (more than half of its seeds).

    A majority, not every seed: with three seeds, one run that stayed at chance
    neither unmakes a group that learned nor, on its own, makes one.
    """
    if not rows_:
        raise Missing("no runs")
    if "learned" not in rows_[0]:
        raise Missing("learned column (rerun the sweep collection)")
    return 2 * sum(r["learned"] == "1" for r in rows_) > len(rows_)


def require_learned(groups: dict[str, list[dict[str, str]]]) -> None:
    """Raise :class:`DidNotLearn` naming every group in which most seeds did not learn."""
    failed = [f"{name} (acc {spread(rs, 'test_accuracy')} < {value(rs[0], 'learned_threshold'):.2f})"
              for name, rs in groups.items() if not learned(rs)]
    if failed:
        raise DidNotLearn(", ".join(failed))


MIN_SEEDS = 3  # a comparison of two groups needs this many seeds in each


class TooFewSeeds(Exception):
    """A comparison of groups with fewer than :data:`MIN_SEEDS` seeds: the verdict is ``inconclusive``."""


def trimmed_spread(values: list[float]) -> float:
    """max - min of the values once the one farthest from their median is set aside (a failed seed's)."""
    ordered = sorted(values)
    middle = median(ordered)
    rest = list(ordered)
    rest.remove(max(ordered, key=lambda v: abs(v - middle)))
    return max(rest) - min(rest)


def compare(a: list[float], b: list[float] | float, margin: float = 0.0) -> int:
    """+1 if ``a`` is above ``b``, -1 if below, 0 for a tie, by a rule that one seed cannot flip.

    The difference counts only if it survives leaving out any one seed of
    either group: every such leave-one-out difference of means has the same
    sign and is larger than the noise, the larger of ``margin`` and each
    group's :func:`trimmed_spread`. So a single failed seed can neither
    widen the spread until a real difference reads as a tie (it is the seed
    set aside), nor make a difference on its own (leaving it out removes the
    difference). Each group needs :data:`MIN_SEEDS` values; ``b`` may be a
    number instead (a fixed level, such as zero or a uniform row's share).
    """
    groups = [a] if isinstance(b, (int, float)) else [a, b]
    for group in groups:
        if len(group) < MIN_SEEDS:
            raise TooFewSeeds(f"{len(group)} seed(s) in a compared group; the rule needs {MIN_SEEDS}")
    noise = max(margin, *(trimmed_spread(g) for g in groups))
    level = (lambda: float(b)) if isinstance(b, (int, float)) else (lambda: mean(b))
    differences = [mean(a[:i] + a[i + 1:]) - level() for i in range(len(a))]
    if not isinstance(b, (int, float)):
        differences += [mean(a) - mean(b[:i] + b[i + 1:]) for i in range(len(b))]
    if all(d > noise for d in differences):
        return 1
    if all(d < -noise for d in differences):
        return -1
    return 0


def curve(row: dict[str, str]) -> list[tuple[int, float]]:
    """The run's test accuracy at each evaluation, ``(step, accuracy)``, from the ``curve.test_accuracy`` column
    (``step:accuracy`` pairs); empty where the sweep did not record it."""
    points = []
    for point in (row.get("curve.test_accuracy") or "").split():
        step, accuracy = point.split(":")
        points.append((int(step), float(accuracy)))
    return points


def steps_to(row: dict[str, str], level: float) -> int | None:
    """The first evaluation step at which the run's test accuracy reached ``level`` (None if it never did)."""
    return next((step for step, accuracy in curve(row) if accuracy >= level), None)


def differ(a: list[dict[str, str]], b: list[dict[str, str]], column: str, margin: float = 0.0) -> int:
    """:func:`compare` of a column over two groups of runs (a diverged run's accuracy counts as 0)."""
    return compare([value(r, column) for r in a], [value(r, column) for r in b], margin)


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


def at_most_partly(verdict: str, unjudged: list[str]) -> str:
    """A claim with a part no run could judge (``unjudged`` names them) is at most ``partly`` reproduced."""
    return "partly" if unjudged and verdict == "reproduced" else verdict


def by_variant(rows_: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows_:
        out[variant(row)].append(row)
    return dict(out)


def theory_judge(prefix: str) -> Callable[[Evidence], tuple[str, str]]:
    return lambda ev: theory_holds(ev, prefix)
