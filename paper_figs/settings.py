"""Setting cards: for each trained claim, the factors its mechanism depends on, the paper's value of each, ours
(read from the sweep rows the verdict comes from, never typed in) and why they differ where they do.

A card is rendered under the ledger's table and on the claim's report card, so a verdict is read next to the
setting it was measured in. ``paper`` is the authors' setting as ``docs/claims.md`` records it (copied
here so that a clone has it); ``same`` is the value of ours that counts as the paper's, where one does (then
``why`` is shown only when ours differs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from experiments import metrics
from paper_figs._rows import setting, variant


@dataclasses.dataclass(frozen=True)
class Factor:
    name: str
    paper: str
    ours: str | Callable[[dict[str, str]], str]  # a column of the rows, or a function of a row
    why: str = ""  # why ours differs from the paper's
    same: str | Callable[[list[str]], bool] | None = None  # our value that matches the paper's, or a test of ours

    def values(self, rows: list[dict[str, str]]) -> list[str]:
        read = self.ours if callable(self.ours) else (lambda r, c=self.ours: r.get(c) or "-")
        found = {read(r) for r in rows}
        return sorted(found, key=lambda v: (len(v), v))

    def matches(self, rows: list[dict[str, str]]) -> bool | None:
        if self.same is None:
            return None
        return self.same(self.values(rows)) if callable(self.same) else self.values(rows) == [self.same]


@dataclasses.dataclass(frozen=True)
class Card:
    sweep: str
    reads: str  # which of the sweep's runs the verdict reads, in words
    factors: tuple[Factor, ...]
    keep: Callable[[dict[str, str]], bool] = lambda row: True

    def rows(self, evidence) -> list[dict[str, str]]:
        return [r for r in evidence.sweeps.get(self.sweep, []) if self.keep(r)]

    def table(self, evidence) -> list[tuple[str, str, str, str]]:
        """``(factor, paper, ours, why)`` rows; ``why`` empty where ours matches; the seed count last."""
        found = self.rows(evidence)
        if not found:
            return []
        out = []
        for factor in self.factors:
            same = factor.matches(found)
            why = "" if same else factor.why
            out.append((factor.name, factor.paper, ", ".join(factor.values(found)), why))
        seeds = sorted({r.get("train.seed", "?") for r in found})
        out.append(("seeds per group", "-", str(len(seeds)), ""))
        return out


def _sink_judged() -> str:
    from paper_figs.claims_beyond import SINK_COLUMN

    return "the most sink-like head" if SINK_COLUMN.endswith(".max") else "the mean over heads"


def _layers(row: dict[str, str]) -> str:
    return f"{row.get('model.num_layers', '?')} layers, d={row.get('model.d_model', '?')}, " \
           f"{row.get('model.num_heads', '?')} heads"


def _post(row: dict[str, str]) -> str:
    return row.get("model.norm_placement") or "pre"


def _init(row: dict[str, str]) -> str:
    return row.get("model.init") or "gpt2"


def _schedule(row: dict[str, str]) -> str:
    return row.get("train.schedule") or "cosine"


MODEL_DEPTH = ("a 2-layer decoder on a synthetic task: a CPU minute per run. The probe (output / residual at "
               "init) shows whether the mechanism acts at this depth")
STEPS = Factor("training steps", "tens of thousands (translation)", "train.steps",
               "CPU budget: the runs stop at a target accuracy or at this many steps; a run that did not learn is "
               "inconclusive, not a verdict")

STABILITY = (
    Factor("norm placement", "post-LN (x = LN(x + f(x)); zero toolkit)", _post, "", same="post"),
    Factor("initialisation", "uniform unit scaling, gain 1, embeddings x sqrt(d)", _init, "", same="unit_scaling"),
    Factor("gradient clipping", "none (clip_grad_norm=0.0)", "train.grad_clip", "", same="0.0"),
    Factor("schedule", "Noam, 4000 warm-up steps", _schedule, "warm-up scaled to the run's length", same="noam"),
    Factor("depth and width", "6+6 layers, d=512, 8 heads", _layers, MODEL_DEPTH),
    Factor("keys per query n", "sentences (tens of tokens)", "task.seq_len",
           "swept: the variance argument (n sigma^2 / 2) needs n large"),
    Factor("task", "WMT translation", "task.name", "a recall task whose learned / not learned is unambiguous"),
    STEPS,
)

CARDS: dict[str, Card] = {
    "R2": Card("stability", "the paper-setting runs (post-LN, unit init); the recipe's runs are listed as a second "
               "setting", STABILITY, keep=lambda r: setting(r) == "paper"),
    "S4": Card("stability", "the paper-setting runs of relu, reluformer and reluformer+reg at each weight",
               STABILITY, keep=lambda r: setting(r) == "paper"),
    "S5": Card("long_context", "every run", (
        Factor("length", "128..2048 tokens; equal at 128/256, gains from 512, +1.15 BLEU at 1024", "task.seq_len",
               "a step at length 512 costs several times one at 128 on a CPU core; the full profile runs to 2048. "
               "Below 512 the paper itself finds a tie, so the judge cannot say not reproduced there",
               same=lambda values: max(int(v) for v in values) >= 512),
        Factor("filler", "natural text (every token competes for attention)", "task.filler",
               "blank filler leaves nothing that grows with the length to compete for attention; random filler "
               "did not learn within the CPU budget", same="random"),
        Factor("vocabulary", "subword vocabulary (tens of thousands)", "task.vocab_size", "synthetic task"),
        Factor("task", "document translation", "task.name", "recall at a distance that grows with the length"),
        Factor("depth and width", "Transformer-base (6+6, d=512)", _layers, MODEL_DEPTH),
        STEPS)),
    "S6": Card("memory", "the softmax FFN memories that learned", (
        Factor("slots", "FFN hidden sizes up to 4096", lambda r: str(int(float(r["model.mlp_ratio"]) *
                                                                         float(r["model.d_model"]))),
               "0.2% of the slots is a whole number of slots only from about 1000 slots; the judge reads the "
               "largest"),
        Factor("positions measured", "every token of a trained translation model", lambda r: "the query positions"
               if r.get("ffn_top_mass_at_queries") else "every position",
               "the memory is read at the positions that ask it; elsewhere its activation is noise"),
        Factor("task", "translation (IWSLT)", "task.name", "a fixed table of two-token facts: memory by design"),
        STEPS), keep=lambda r: r.get("model.mlp_activation") == "softmax"),
    "R7": Card("alignment_aer", "every run", (
        Factor("unaligned target words", "yes (real sentence pairs)",
               lambda r: f"particles before {float(r.get('task.particle_fraction') or 0):.0%} of the source words",
               "without unaligned words a null row can only lose links",
               same=lambda values: all(not v.startswith("particles before 0%") for v in values)),
        Factor("rows counted", "every target word", lambda r: metrics.AER_ROWS,
               "with every target word aligned, the two are the same rows", same="every target word"),
        Factor("link types", "sure and possible (gold alignments)",
               lambda r: "sure and possible (a particle to the word it precedes)"
               if r.get("task.possible_links") in ("True", "true", "1") else "sure only",
               "without possible links a particle's link to its word counts against a head",
               same="sure and possible (a particle to the word it precedes)"),
        Factor("heads read", "best head per layer, 6 layers x 8 heads", _layers,
               "2 layers x 2 heads: fewer heads to choose the best from"),
        Factor("task", "translation (WMT)", "task.name", "a reordering task whose gold links are known"),
        STEPS)),
    "B2": Card("length_gen", "every run", (
        Factor("longest test length", "many times the training length", lambda r: str(max(
            int(c.split(".")[1]) for c in r if c.startswith("length.")) // int(r["task.seq_len"])) + "x"
            if any(c.startswith("length.") for c in r) else "-",
               "evaluation at a longer length costs memory quadratic in it"),
        Factor("filler", "natural text or random tokens", "task.filler",
               "blank: with random filler softmax did not learn MQAR without positions in the quick budget; blank "
               "filler is a ready-made no-op target and no distractor", same="random"),
        Factor("positions", "none or RoPE (length extrapolation)", "model.positions", "", same="none"),
        STEPS)),
    "B3": Card("length_gen", "the MQAR runs of softmax, off-by-one softmax, softpick and ReLA-g", (
        Factor("sink judged", "per head (sinks form in single heads)", lambda r: _sink_judged(), "",
               same="the most sink-like head"),
        Factor("filler", "natural text", "task.filler",
               "blank (random filler did not learn in the quick budget); blank filler gives every head a no-op "
               "target, so a sink has less to do", same="random"),
        Factor("depth and width", "LLMs (many layers and heads)", _layers, MODEL_DEPTH),
        STEPS), keep=lambda r: r.get("task.name") == "mqar" and variant(r) in ("softmax", "softmax1", "softpick",
                                                                                "rela_g")),
}


def render_markdown(evidence, claim_ids) -> list[str]:
    """The ledger's setting-card section: one table per claim with a card."""
    lines = ["## Setting cards", "",
             "For each trained claim, the factors its mechanism depends on: the paper's value, ours (read from the "
             "runs the verdict comes from) and why they differ where they do.", ""]
    for claim_id in claim_ids:
        card = CARDS.get(claim_id)
        table = card.table(evidence) if card else []
        if not table:
            continue
        lines += [f"### {claim_id} ({card.sweep}: {card.reads})", "", "| factor | paper | ours | why ours differs |",
                  "|---|---|---|---|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in table]
        lines.append("")
    return lines
