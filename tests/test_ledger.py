"""Every claim's criterion on fabricated results: one set that should pass, one that should fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from paper_figs import claims, make_ledger
from paper_figs.claims import CLAIMS, Evidence


THRESHOLD = 0.5  # the fabricated runs' learned threshold (halfway from a chance level of 0)


def row(attention: str, **columns) -> dict[str, str]:
    """A fabricated sweep row; it learned when its accuracy (if it has one) clears THRESHOLD."""
    out = {"model.attention.name": attention, "status": "finished", "train.seed": "0",
           "chance": "0.0", "learned_threshold": str(THRESHOLD)}
    out.update({key.replace("__", "."): str(value) for key, value in columns.items()})
    if "learned" not in out:
        out["learned"] = str(int(float(out.get("test_accuracy") or 1.0) >= THRESHOLD))
    return out


def at_chance(evidence: Evidence, accuracy: float = 0.25) -> Evidence:
    """The same runs, none of which learned: every accuracy at the task's chance level."""
    sweeps = {name: [{**r, "test_accuracy": str(accuracy), "chance": str(accuracy), "learned": "0",
                      "learned_threshold": str(accuracy + 0.5 * (1 - accuracy))} for r in rows]
              for name, rows in evidence.sweeps.items()}
    return Evidence(sweeps=sweeps, theory=evidence.theory, speed=evidence.speed)


def theory(claim: str, holds: bool) -> list[dict]:
    return [{"claim": claim, "statement": "s", "ours": "o", "holds": holds, "mode": "full"}]


def heads(rela: dict, baseline: dict) -> Evidence:
    rows = [row("rela_g", **rela)] + [row(name, **baseline) for name in ("softmax", "sparsemax", "entmax15")]
    return Evidence(sweeps={"heads": rows})


def stability(relu_acc: float, others_acc: float, reg_acc: float) -> Evidence:
    rows = [row("relu", test_accuracy=relu_acc, train__lr=1e-3)]
    rows += [row(name, test_accuracy=others_acc, train__lr=1e-3) for name in ("rela_i", "rela_g", "reluformer")]
    rows.append(row("reluformer", test_accuracy=reg_acc, train__lr=1e-3, model__attention__norm_loss_weight=0.1))
    return Evidence(sweeps={"stability": rows})


def alignment(rela_acc: float, rela_aer: float) -> Evidence:
    rows = []
    for order in ("identity", "reversal"):
        rows.append(row("rela_g", task__reordering=order, test_accuracy=rela_acc, aer=rela_aer))
        rows += [row(n, task__reordering=order, test_accuracy=0.99, aer=0.2) for n in ("softmax", "sparsemax")]
    return Evidence(sweeps={"alignment_aer": rows})


def memory(relu: float, softmax: float, softmax_ln: float, top_mass: float, theory_holds: bool = True) -> Evidence:
    rows = []
    for ratio in (1, 4):
        for activation, acc in (("relu", relu), ("softmax", softmax), ("softmax_ln", softmax_ln)):
            rows.append(row("softmax", model__mlp_activation=activation, model__mlp_ratio=ratio, test_accuracy=acc,
                            ffn_top_mass=top_mass))
    return Evidence(sweeps={"memory": rows}, theory=theory("S2", theory_holds))


def speed(rela: float, sparse: float) -> Evidence:
    rows = [{"label": name, "variant": name, "form": "", "length": "128", "seconds_ratio": str(ratio)}
            for name, ratio in (("rela_g", rela), ("sparsemax", sparse), ("entmax15", sparse))]
    return Evidence(speed=rows)


def long_context(relu: float, soft: float) -> Evidence:
    rows = [row(n, task__seq_len=length, test_accuracy=acc) for length in (32, 128)
            for n, acc in (("reluformer", relu), ("softmax", soft))]
    return Evidence(sweeps={"long_context": rows})


def mqar(gaps: list[float]) -> Evidence:
    rows = []
    for n, gap in zip((1, 2, 4, 8), gaps):
        rows += [row("softmax", task__num_kv_pairs=n, test_accuracy=0.5 + gap), row("linear", task__num_kv_pairs=n,
                                                                                      test_accuracy=0.5)]
    return Evidence(sweeps={"mqar_pairs": rows})


def length_gen(ssmax_drop: float, stick_drop: float, softmax_drop: float = -0.3) -> Evidence:
    """Two seeds per variant on each task, trained at 32 and tested at 256: accuracy 0.9 at 1x."""
    rows = []
    for task in ("mqar", "needle"):
        for name, drop in (("softmax", softmax_drop), ("ssmax", ssmax_drop), ("stick_breaking", stick_drop)):
            rows += [row(name, task__name=task, task__seq_len=32, train__seed=seed, test_accuracy=0.9,
                         length__64=0.9, length__256=0.9 + drop + 0.01 * seed) for seed in (0, 1)]
    return Evidence(sweeps={"length_gen": rows})


def sinks(softmax_first: float, remover_first: float) -> Evidence:
    rows = [row(name, task__name="mqar", task__seq_len=32, train__seed=seed, test_accuracy=0.99,
                attn__null_rate__mean=0.0, attn__first_mass__mean=first + 0.01 * seed)
            for name, first in (("softmax", softmax_first), ("softmax1", remover_first), ("softpick", remover_first),
                                ("rela_g", remover_first)) for seed in (0, 1)]
    return Evidence(sweeps={"length_gen": rows})


CASES = {
    "B2": (length_gen(-0.05, -0.02), length_gen(-0.3, -0.35)),
    "B3": (sinks(0.4, 0.05), sinks(0.4, 0.4)),
    "R1": (heads({"attn.sparsity.mean": 0.8}, {"attn.sparsity.mean": 0.0}),
           heads({"attn.sparsity.mean": 0.45}, {"attn.sparsity.mean": 0.0})),
    "R2": (stability(0.2, 0.9, 0.95), stability(0.9, 0.9, 0.9)),
    "R3": (alignment(0.985, 0.1), alignment(0.80, 0.1)),
    "R4": (speed(1.1, 4.0), speed(5.0, 4.0)),
    "R5": (heads({"attn.head_diversity.mean": 0.4}, {"attn.head_diversity.mean": 0.1}),
           heads({"attn.head_diversity.mean": 0.05}, {"attn.head_diversity.mean": 0.1})),
    "R6": (heads({"attn.null_rate.max": 0.2}, {"attn.null_rate.max": 0.0}),
           heads({"attn.null_rate.max": 0.0}, {"attn.null_rate.max": 0.0})),
    "R7": (alignment(0.99, 0.05), alignment(0.99, 0.5)),
    "S2": (memory(0.8, 0.5, 0.78, 0.9), memory(0.8, 0.9, 0.6, 0.9, theory_holds=False)),
    "S3": (memory(0.8, 0.5, 0.78, 0.9), memory(0.4, 0.5, 0.78, 0.9)),
    "S4": (stability(0.2, 0.9, 0.95), stability(0.9, 0.9, 0.5)),
    "S5": (long_context(0.8, 0.6), long_context(0.6, 0.8)),
    "S6": (memory(0.8, 0.5, 0.78, 0.9), memory(0.8, 0.5, 0.78, 0.1)),
    "D1": (mqar([0.0, 0.1, 0.3, 0.4]), mqar([0.0, -0.1, 0.0, 0.0])),
}
THEORY_ONLY = {"S1": "S1", "D2": "D2", "K1": "K1", "K2": "K2", "K3": "K3", "Q1": "Q1", "H1": "H1",
               "SCALE": "SCALE-sigmoid", "B1": "B1", "B4": "B4"}


def test_the_ledger_has_one_row_per_claim_id_in_the_repository():
    assert [c.id for c in CLAIMS] == list(claims.CLAIM_IDS)  # every id once, in the ledger's order
    with pytest.raises(ValueError, match="not in CLAIM_IDS"):
        claims.claim("Z9", "a claim nobody made", "", "", "")


def test_the_claim_ids_match_papers_md_where_it_is_beside_the_clone():
    papers = Path(__file__).resolve().parents[2] / "shared" / "PAPERS.md"
    if not papers.exists():
        pytest.skip(f"{papers} is not beside this clone; the ids are checked against claims.CLAIM_IDS above")
    text = papers.read_text()
    for claim_id, heading in claims.CLAIM_IDS.items():
        # the scaling rules are a section of PAPERS.md, not a numbered claim; B1-B4 come from later papers
        if claim_id != "SCALE" and claim_id not in claims.BEYOND_IDS:
            assert f"**{claim_id} {heading}" in text, claim_id


def test_every_claim_has_a_case():
    assert set(CASES) | set(THEORY_ONLY) == {c.id for c in CLAIMS}


@pytest.mark.parametrize("claim_id", sorted(CASES))
def test_criterion_passes_and_fails_on_fabricated_results(claim_id):
    claim = next(c for c in CLAIMS if c.id == claim_id)
    passing, failing = CASES[claim_id]
    assert claim.verdict(passing)[1] == "reproduced", claim.verdict(passing)
    assert claim.verdict(failing)[1] == "not reproduced", claim.verdict(failing)
    assert claim.verdict(Evidence())[1] == "not run"


@pytest.mark.parametrize("claim_id", sorted(THEORY_ONLY))
def test_theory_claims_follow_the_notebooks(claim_id):
    claim = next(c for c in CLAIMS if c.id == claim_id)
    assert claim.verdict(Evidence(theory=theory(THEORY_ONLY[claim_id], True)))[1] == "reproduced"
    assert claim.verdict(Evidence(theory=theory(THEORY_ONLY[claim_id], False)))[1] == "not reproduced"
    mixed = theory(THEORY_ONLY[claim_id], True) + theory(THEORY_ONLY[claim_id], False)
    assert claim.verdict(Evidence(theory=mixed))[1] == "partly"
    assert claim.verdict(Evidence())[1] == "not run"


TRAINED = sorted(set(CASES) - {"R4"})  # every claim judged on trained models (R4 is a benchmark)


@pytest.mark.parametrize("claim_id", TRAINED)
def test_runs_at_chance_give_inconclusive_for_every_trained_claim(claim_id):
    claim = next(c for c in CLAIMS if c.id == claim_id)
    for evidence in CASES[claim_id]:
        ours, verdict = claim.verdict(at_chance(evidence))
        assert verdict == "inconclusive", (ours, verdict)
        assert ours.startswith("did not learn")


def test_s5_false_positive_of_the_flat_long_context_figure_is_inconclusive():
    # the measured quick run: every variant at chance (4 pairs: 0.25), reluformer 0.268 against softmax 0.247
    claim = next(c for c in CLAIMS if c.id == "S5")
    rows = [row(n, task__seq_len=length, test_accuracy=acc, chance=0.25, learned_threshold=0.625, learned=0)
            for length in (32, 64) for n, acc in (("reluformer", 0.268), ("softmax", 0.247))]
    assert claim.verdict(Evidence(sweeps={"long_context": rows}))[1] == "inconclusive"


def test_b2_and_b3_are_untestable_where_the_baseline_shows_no_effect():
    b2 = next(c for c in CLAIMS if c.id == "B2")
    ours, verdict = b2.verdict(length_gen(-0.05, -0.02, softmax_drop=0.0))  # softmax does not fade
    assert verdict == "inconclusive" and ours.startswith("untestable") and "no loss beyond its seed spread" in ours
    b3 = next(c for c in CLAIMS if c.id == "B3")
    ours, verdict = b3.verdict(sinks(0.05, 0.02))  # below the uniform share of a 32-token causal row (0.099)
    assert verdict == "inconclusive" and "softmax formed no sink" in ours


def test_b2_judges_only_the_claimants_that_learned():
    evidence = length_gen(-0.05, -0.02)
    for r in evidence.sweeps["length_gen"]:
        if r["model.attention.name"] == "stick_breaking":
            r.update(test_accuracy="0.1", learned="0")
    ours, verdict = next(c for c in CLAIMS if c.id == "B2").verdict(evidence)
    assert verdict == "reproduced" and "not judged: stick_breaking on mqar, stick_breaking on needle" in ours


def test_s5_tie_of_two_learned_models_is_partly():
    claim = next(c for c in CLAIMS if c.id == "S5")
    assert claim.verdict(long_context(0.9, 0.9))[1] == "partly"


def test_s5_judges_the_longest_length_where_either_learned():
    claim = next(c for c in CLAIMS if c.id == "S5")
    rows = [row("reluformer", task__seq_len=64, test_accuracy=0.9), row("softmax", task__seq_len=64, test_accuracy=0.7),
            row("reluformer", task__seq_len=256, test_accuracy=0.3), row("softmax", task__seq_len=256, test_accuracy=0.3)]
    ours, verdict = claim.verdict(Evidence(sweeps={"long_context": rows}))
    assert verdict == "reproduced" and "length 64" in ours


def test_a_difference_inside_the_seed_spread_is_a_tie():
    a = [row("softmax", test_accuracy=0.80, train__seed=0), row("softmax", test_accuracy=0.90, train__seed=1)]
    b = [row("linear", test_accuracy=0.78, train__seed=0), row("linear", test_accuracy=0.80, train__seed=1)]
    assert claims.differ(a, b, "test_accuracy") == 0  # means 0.85 vs 0.79: 0.06 < spread 0.10
    c = [row("linear", test_accuracy=0.50, train__seed=0), row("linear", test_accuracy=0.52, train__seed=1)]
    assert claims.differ(a, c, "test_accuracy") == 1 and claims.differ(c, a, "test_accuracy") == -1
    assert claims.differ(a, a, "test_accuracy") == 0


def test_d1_ignores_pair_counts_where_neither_learned_and_seeds_tie():
    claim = next(c for c in CLAIMS if c.id == "D1")
    rows = []
    for n, soft, lin in ((4, 1.0, 0.99), (16, 0.98, 0.40), (64, 0.03, 0.02)):
        rows += [row("softmax", task__num_kv_pairs=n, test_accuracy=soft),
                 row("linear", task__num_kv_pairs=n, test_accuracy=lin)]
    ours, verdict = claim.verdict(Evidence(sweeps={"mqar_pairs": rows}))
    assert verdict == "reproduced" and "N=64: neither learned" in ours


def test_r2_counts_plain_relu_failing_where_rela_learns():
    claim = next(c for c in CLAIMS if c.id == "R2")
    rows = []
    for lr, relu_status, relu_acc in (("0.001", "finished", 0.97), ("0.03", "diverged", "")):
        rows.append(row("relu", train__lr=lr, status=relu_status, test_accuracy=relu_acc,
                        learned=int(relu_acc != "")))
        rows += [row(n, train__lr=lr, test_accuracy=0.97) for n in ("rela_i", "rela_g")]
    assert claim.verdict(Evidence(sweeps={"stability": rows}))[1] == "reproduced"
    # the same, but the normalised variants diverge too: no learning rate where they learned beside relu's failure
    for r in rows:
        if r["train.lr"] == "0.03":
            r.update(status="diverged", test_accuracy="", learned="0")
    assert claim.verdict(Evidence(sweeps={"stability": rows}))[1] == "not reproduced"


def test_a_diverged_run_counts_as_zero_accuracy():
    diverged = {"status": "diverged", "test_accuracy": ""}
    assert claims.value(diverged, "test_accuracy") == 0.0


def test_render_writes_every_row_and_a_summary():
    text = make_ledger.render(CASES["R1"][0], "quick")
    assert "Profile: **quick**" in text
    assert text.count("\n| ") == len(CLAIMS) + 1  # header + one row per claim
    assert "**reproduced**" in text and "**not run**" in text
    assert "inconclusive" in text.split("\n")[4]  # the summary counts every verdict kind


def test_render_counts_the_learned_runs_the_claims_read():
    evidence = at_chance(CASES["S5"][0])
    evidence.sweeps["long_context"][0]["learned"] = "1"
    evidence.sweeps["copying_length"] = [row("softmax", test_accuracy=0.1)]  # no claim reads it: not counted
    text = make_ledger.render(evidence, "quick")
    assert "**1 of 4** (25%)" in text
