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


def _count(row: dict[str, str], column: str, noun: str) -> str:
    n = row.get(column, "?")
    return f"{n} {noun}" if n == "1" else f"{n} {noun}s"


def _layers(row: dict[str, str]) -> str:
    return f"{_count(row, 'model.num_layers', 'layer')}, d={row.get('model.d_model', '?')}, " \
           f"{_count(row, 'model.num_heads', 'head')}"


def _post(row: dict[str, str]) -> str:
    return row.get("model.norm_placement") or "pre"


def _init(row: dict[str, str]) -> str:
    return row.get("model.init") or "gpt2"


def _schedule(row: dict[str, str]) -> str:
    return row.get("train.schedule") or "cosine"


MODEL_DEPTH = ("a small decoder on a synthetic task, trained on a CPU core. The probe (output / residual at "
               "init) shows whether the mechanism acts at this depth")
STEPS = Factor("training steps", "tens of thousands (translation)", "train.steps",
               "CPU budget: each run trains at most this many steps (sooner only where the card's early stop says "
               "so); a run that did not learn is inconclusive, not a verdict")

SINKS = (
    Factor("task", "Bigram-Backcopy: V=65 characters, length 256, k=3 triggers", lambda r: (
        f"{r.get('task.name')}: V={r.get('task.vocab_size')}, length {r.get('task.seq_len')}, "
        f"k={r.get('task.num_triggers')} triggers"),
        "shorter on a CPU core (a step's cost grows with the length; the full profile runs 256): a sink needs only "
        "dormant rows, which every length has"),
    Factor("depth and width", "1-3 layers, d=256, 1 head per layer", _layers,
           "width 64, trained on a CPU core; the judges read the one-layer models"),
    Factor("weight decay", "1e-4", "train.weight_decay", "", same="0.0001"),
    Factor("sink judged", "per head, at non-trigger (dormant) rows", lambda r: "the most sink-like head, at the "
           "dormant rows", "", same="the most sink-like head, at the dormant rows"),
    Factor("training steps", "10^4-10^5 (GPU), batch 512", lambda r: f"{r.get('train.steps')}, batch "
           f"{r.get('train.batch_size')}", "CPU budget; every run trains the whole budget (no early stop); the judges "
           "read only groups that learned (halfway from chance to the task's ceiling)"),
)

MEMORY_GRID = (  # S2 and S3b read the same relu / softmax_ln memories
    Factor("slots and facts", "FFN hidden sizes 32..4096 on translation (no fixed table)",
           lambda r: f"{int(float(r['model.mlp_ratio']) * float(r['model.d_model']))} slots, "
                     f"{r['task.num_facts']} facts",
           "a fixed table, sized (deep profile) so that the most slots store only part of it: relu and softmax_ln "
           "compare below the ceiling"),
    Factor("width d", "512", "model.d_model", "a CPU memory"),
    Factor("training steps", "tens of thousands (translation)", "train.steps",
           "CPU budget; every run trains the whole budget (no early stop)"),
)

STABILITY = (
    Factor("norm placement", "post-LN (x = LN(x + f(x)); zero toolkit)", _post, "", same="post"),
    Factor("initialisation", "uniform unit scaling, gain 1, embeddings x sqrt(d)", _init, "", same="unit_scaling"),
    Factor("gradient clipping", "none (clip_grad_norm=0.0)", "train.grad_clip", "", same="0.0"),
    Factor("schedule", "Noam, 4000 warm-up steps", _schedule, "warm-up scaled to the run's length", same="noam"),
    Factor("depth and width", "6+6 layers, d=512, 8 heads", _layers, MODEL_DEPTH),
    Factor("keys per query n", "sentences (tens of tokens)", "task.seq_len",
           "swept: the variance argument (n sigma^2 / 2) needs n large"),
    Factor("task", "WMT translation", "task.name", "a recall task whose learned / not learned is unambiguous"),
    Factor("training steps", "tens of thousands (translation)", "train.steps",
           "CPU budget: a run stops at 0.95 test accuracy or at this many steps. One that ends below the learned "
           "threshold without diverging did not learn in that many steps, which is not instability; the ledger "
           "says diverged only where a run did"),
)

def _accuracy_range(row: dict[str, str]) -> str:
    from paper_figs.claims_alignment import task_ceiling

    return f"token accuracy: chance {float(row['chance']):.2f}, best possible {task_ceiling(row):.2f}"


def _training_length(row: dict[str, str]) -> str:
    if int(row.get("train.plateau_evals") or 0) > 0:
        return f"until test accuracy stopped rising (cap {row['train.steps']})"
    return f"{row['train.steps']} steps (a cap; no plateau rule)"


ALIGNMENT_READS = "the authors'-setting runs where run (post-LN, unit init), else the recipe's; each reordering"
ALIGNMENT_SETTING = (
    Factor("training length", "to convergence (tens of thousands of steps)", _training_length,
           "a run stopped at a cap while still climbing measures learning speed: the verdict is inconclusive",
           same=lambda values: all(v.startswith("until") for v in values)),
    Factor("norm placement", "post-LN (x = LN(x + f(x)); zero toolkit)", _post,
           "the recipe's pre-LN (runs in the authors' setting, where present, are the ones judged)", same="post"),
    Factor("initialisation", "uniform unit scaling, gain 1, embeddings x sqrt(d)", _init, "the recipe's GPT-2 init",
           same="unit_scaling"),
    Factor("gradient clipping", "none (clip_grad_norm=0.0)", "train.grad_clip", "the recipe clips at 1",
           same="0.0"),
    Factor("weight decay", "none (Adam)", "train.weight_decay", "the recipe's AdamW decay 0.1", same="0.0"),
    Factor("depth and width", "6+6 layers, d=512, 8 heads", _layers,
           "a CPU budget; the full profile has the authors' sizes"),
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
        Factor("filler", "natural text (every token competes for attention)",
               lambda r: f"random, from {r['task.filler_tokens']} tokens disjoint from keys and values"
               if int(r.get("task.filler_tokens") or 0) else r.get("task.filler") or "-",
               "quick: blank filler leaves nothing that grows with the length to compete for attention (the deep "
               "and full profiles draw random filler from tokens of its own)",
               same=lambda values: all(v.startswith("random") for v in values)),
        Factor("early stop", "none (a fixed schedule)", lambda r: "none" if float(r.get("train.target_accuracy")
               or 0) == 0 else f"at test accuracy {r['train.target_accuracy']}",
               "a run stopped at a target accuracy caps any difference above it", same="none"),
        Factor("vocabulary", "subword vocabulary (tens of thousands)", "task.vocab_size", "synthetic task"),
        Factor("task", "document translation", "task.name", "recall at a distance that grows with the length"),
        Factor("depth and width", "Transformer-base (6+6, d=512)", _layers, MODEL_DEPTH),
        STEPS)),
    "S6": Card("memory", "the softmax FFN memories that learned", (
        Factor("slots", "FFN hidden sizes up to 4096", lambda r: str(int(float(r["model.mlp_ratio"]) *
                                                                         float(r["model.d_model"]))),
               "0.2% of the slots is a whole number of slots only from about 1000 slots; the judge reads the "
               "largest"),
        Factor("weight decay", "1e-4 (the IWSLT fairseq recipe)",
               lambda r: f"{float(r.get('train.weight_decay') or 0.1):g}",
               "0.1 is the recall recipe's; weight decay bounds the slot logits, so the verdict reads 1e-4 where it "
               "was trained and shows 0.1 beside it", same=lambda values: "0.0001" in values),
        Factor("width d", "512 (Transformer FFN, hidden 1024-4096)", "model.d_model",
               "a CPU memory; d bounds the slot logits' range too, so a wider memory is trained beside d=16 and "
               "the verdict reads the widest at 1e-4"),
        Factor("positions measured", "every token of a trained translation model", lambda r: "the query positions"
               if r.get("ffn_top_mass_at_queries") else "every position",
               "the memory is read at the positions that ask it; elsewhere its activation is noise"),
        Factor("task", "translation (IWSLT)", "task.name", "a fixed table of two-token facts: memory by design"),
        STEPS), keep=lambda r: r.get("model.mlp_activation") == "softmax"),
    "S2": Card("memory", "relu and softmax_ln at the most slots below the ceiling", MEMORY_GRID,
               keep=lambda r: r.get("model.mlp_activation") in ("relu", "softmax_ln")),
    "S3b": Card("memory", "relu and softmax_ln at the most slots", MEMORY_GRID,
                keep=lambda r: r.get("model.mlp_activation") in ("relu", "softmax_ln")),
    "D1": Card("mqar_pairs", "the length arm (linear attention with more features than pairs)", (
        Factor("features vs pairs", "any: the separation needs no capacity limit", lambda r: (
               "more" if int(r["model.d_model"]) // int(r["model.num_heads"]) > int(r["task.num_kv_pairs"])
               else "fewer") + f" features ({int(r['model.d_model']) // int(r['model.num_heads'])}) than pairs "
               f"({r['task.num_kv_pairs']})",
               "fewer features than pairs limits linear attention's capacity (K2), another mechanism",
               same=lambda values: all(v.startswith("more") for v in values)),
        Factor("length n", "growing (a planted score b ~ log n among n)", "task.seq_len", ""),
        Factor("competing keys", "every key scores N(0,1) against the query", lambda r: f"{r['task.filler']} filler",
               "blank filler gives every non-pair position one token, which a model can learn to ignore; with "
               "filler of its own tokens softmax does not leave chance within a CPU budget",
               same=lambda values: all(v.startswith("random") for v in values)),
        Factor("early stop", "none (theory: the optimum)", lambda r: "none" if float(r.get("train.target_accuracy")
               or 0) == 0 else f"at test accuracy {r['train.target_accuracy']}",
               "a run stopped at a target accuracy caps any difference above it", same="none"),
        Factor("training steps", "the optimum (theory)", "train.steps", "CPU budget; no early stop")),
        keep=lambda r: r.get("task.power_a") in ("1.0", "1")),
    "R3": Card("alignment_aer", ALIGNMENT_READS, (
        Factor("quality measure", "SacreBLEU on 4 WMT pairs", _accuracy_range,
               "a synthetic task: whether a word yields a second target word is a coin flip, so no model reaches "
               "accuracy 1; read accuracy against the ceiling"),
        Factor("compared with", "softmax, sparsemax, 1.5-entmax; ReLA within 0.3 BLEU of softmax, 0.6 of the best",
               lambda r: "softmax (the verdict); the best of three beside it",
               "the verdict asks what the paper's table shows for softmax; the best of three is reported, not judged"),
        *ALIGNMENT_SETTING)),
    "R7": Card("alignment_aer", ALIGNMENT_READS, (
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
        Factor("heads read", "per layer: the best head and the head average, 6 layers x 8 heads",
               lambda r: f"per layer: best head and head average, {r.get('model.num_layers', '?')} layers x "
                         f"{r.get('model.num_heads', '?')} heads; the verdict reads the best layer's best head",
               "fewer heads to choose the best from on a CPU budget"),
        Factor("task", "translation (WMT)", "task.name", "a reordering task whose gold links are known"),
        *ALIGNMENT_SETTING)),
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
    "B3": Card("sinks", "the one-layer runs of softmax, off-by-one softmax, softpick and ReLA-g", SINKS,
               keep=lambda r: r.get("model.num_layers") == "1" and variant(r) in ("softmax", "softmax1", "softpick",
                                                                                  "rela_g")),
    "B5": Card("sinks", "the one-layer runs of softmax and relu", SINKS,
               keep=lambda r: r.get("model.num_layers") == "1" and variant(r) in ("softmax", "relu")),
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
