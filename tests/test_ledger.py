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
           "chance": "0.0", "ceiling": "1.0", "learned_threshold": str(THRESHOLD)}
    out.update({key.replace("__", "."): str(value) for key, value in columns.items()})
    if "learned" not in out:
        out["learned"] = str(int(float(out.get("test_accuracy") or 1.0) >= THRESHOLD))
    return out


SEEDS = (0, 1, 2)  # the judges compare groups of at least three seeds


def seeded(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each fabricated run once per seed of SEEDS, with the same numbers (no spread)."""
    return [{**r, "train.seed": str(seed)} for r in rows for seed in SEEDS]


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
    return Evidence(sweeps={"heads": seeded(rows)})


def stability(relu_acc: float, others_acc: float, reg_acc: float) -> Evidence:
    rows = [row("relu", test_accuracy=relu_acc, train__lr=1e-3)]
    rows += [row(name, test_accuracy=others_acc, train__lr=1e-3) for name in ("rela_i", "rela_g", "reluformer")]
    rows.append(row("reluformer", test_accuracy=reg_acc, train__lr=1e-3, model__attention__norm_loss_weight=0.1))
    return Evidence(sweeps={"stability": seeded([{**r, "task.seq_len": "32"} for r in rows])})


def alignment(rela_acc: float, rela_aer: float) -> Evidence:
    rows = []
    for order in ("identity", "reversal"):
        rows.append(row("rela_g", task__reordering=order, test_accuracy=rela_acc, aer=rela_aer,
                        task__particle_fraction=0.25, status="plateaued"))
        rows += [row(n, task__reordering=order, test_accuracy=0.99, aer=0.2, status="plateaued")
                 for n in ("softmax", "sparsemax")]
    return Evidence(sweeps={"alignment_aer": seeded(rows)})


def memory(relu: float, softmax: float, softmax_ln: float, top_mass: float, theory_holds: bool = True) -> Evidence:
    rows = []
    for ratio in (1, 4):
        for activation, acc in (("relu", relu), ("softmax", softmax), ("softmax_ln", softmax_ln)):
            rows.append(row("softmax", model__mlp_activation=activation, model__mlp_ratio=ratio, test_accuracy=acc,
                            ffn_top_mass=top_mass, model__d_model=16))
    rows += [row("softmax", model__mlp_activation="softmax", model__mlp_ratio=128, test_accuracy=softmax,
                 ffn_top_mass=top_mass, ffn_top_mass_at_queries=top_mass, model__d_model=16,
                 train__weight_decay=1e-4)]  # 2048 slots at the paper's weight decay: S6
    return Evidence(sweeps={"memory": seeded(rows)}, theory=theory("S2", theory_holds))


def speed(rela: float, sparse: float) -> Evidence:
    """Time ratios to SDPA (the materialised softmax at 1.5x SDPA's time); decoding at the same ratios."""
    rows = [{"label": name, "variant": name, "form": "", "length": "128", "seconds_ratio": str(ratio)}
            for name, ratio in (("rela_g", rela), ("sparsemax", sparse), ("entmax15", sparse),
                                ("softmax (materialised)", 1.5))]
    decoding = [{"label": name, "variant": name, "token_ratio": ratio}
                for name, ratio in (("softmax", 1.0), ("rela_g", rela / 1.5), ("sparsemax", sparse / 1.5),
                                    ("entmax15", sparse / 1.5))]
    return Evidence(speed=rows, decoding=decoding)


def long_context(relu: float, soft: float) -> Evidence:
    rows = [row(n, task__seq_len=length, test_accuracy=acc) for length in (128, 1024)
            for n, acc in (("reluformer", relu), ("softmax", soft))]
    return Evidence(sweeps={"long_context": seeded(rows)})


def mqar(gaps: list[float]) -> Evidence:
    """D1's length arm: 8 pairs, one head of width 32 (32 linear features), softmax - linear gap per length."""
    rows = []
    arm = dict(task__num_kv_pairs=8, model__d_model=32, model__num_heads=1)
    for length, gap in zip((64, 128, 256, 512), gaps):
        rows += [row("softmax", task__seq_len=length, test_accuracy=0.5 + gap, **arm),
                 row("linear", task__seq_len=length, test_accuracy=0.5, **arm)]
    return Evidence(sweeps={"mqar_pairs": seeded(rows)})


def length_gen(ssmax_drop: float, stick_drop: float, softmax_drop: float = -0.3) -> Evidence:
    """Three seeds per variant on each task, trained at 32 and tested at 256: accuracy 0.9 at 1x."""
    rows = []
    for task in ("mqar", "needle"):
        for name, drop in (("softmax", softmax_drop), ("ssmax", ssmax_drop), ("stick_breaking", stick_drop)):
            rows += [row(name, task__name=task, task__seq_len=32, train__seed=seed, test_accuracy=0.9,
                         length__64=0.9, length__256=0.9 + drop + 0.01 * seed) for seed in SEEDS]
    return Evidence(sweeps={"length_gen": rows})


def sinks(softmax_first: float, remover_first: float, *, relu_share: float = 0.1, null: float = 0.3) -> Evidence:
    """One-layer Bigram-Backcopy runs: softmax puts ``softmax_first`` on the first token at dormant rows (none
    at active rows; a uniform row puts 0.04 there), off-by-one softmax and softpick ``remover_first``; relu
    a ``relu_share`` of its rows; softpick and rela_g leave ``null`` of their dormant rows all zero."""
    runs = {"softmax": dict(first=softmax_first, share=softmax_first, null=0.0),
            "softmax1": dict(first=remover_first, share=remover_first, null=0.0),
            "softpick": dict(first=remover_first, share=remover_first, null=null),
            "rela_g": dict(first=remover_first, share=remover_first, null=null),
            "relu": dict(first=relu_share, share=relu_share, null=0.5)}
    rows = [row(name, task__name="bigram_backcopy", model__num_layers=1, train__seed=seed, test_accuracy=0.64,
                ceiling=0.644, sink__first_weight_dormant=r["first"] + 0.01 * seed, sink__first_share_dormant=r["share"]
                + 0.01 * seed, sink__first_weight_active=0.0, sink__uniform=0.04, sink__null_dormant=r["null"],
                sink__row_mass_dormant=1.0, sink__value_norm_ratio=0.5)
            for name, r in runs.items() for seed in SEEDS]
    return Evidence(sweeps={"sinks": rows})


CASES = {
    "B2": (length_gen(-0.05, -0.02), length_gen(-0.3, -0.35)),
    "B3": (sinks(0.7, 0.05), sinks(0.7, 0.7, null=0.0)),
    "B5": (sinks(0.7, 0.05), sinks(0.03, 0.05)),
    "R1": (heads({"attn.sparsity.mean": 0.8, "probe.sparsity_at_init": 0.5}, {"attn.sparsity.mean": 0.0}),
           heads({"attn.sparsity.mean": 0.45, "probe.sparsity_at_init": 0.5}, {"attn.sparsity.mean": 0.0})),
    "R2": (stability(0.2, 0.9, 0.95), stability(0.9, 0.9, 0.9)),
    "R3": (alignment(0.985, 0.1), alignment(0.80, 0.1)),
    "R4": (speed(1.6, 4.0), speed(5.0, 4.0)),
    "R5": (heads({"head_diversity_at_queries": 0.4}, {"head_diversity_at_queries": 0.1}),
           heads({"head_diversity_at_queries": 0.05}, {"head_diversity_at_queries": 0.1})),
    "R6": (heads({"attn.null_rate.max": 0.2, "probe.null_rate_at_init": 0.02}, {"attn.null_rate.max": 0.0}),
           heads({"attn.null_rate.max": 0.0, "probe.null_rate_at_init": 0.02}, {"attn.null_rate.max": 0.0})),
    "R7": (alignment(0.99, 0.05), alignment(0.99, 0.5)),
    "S2": (memory(0.8, 0.5, 0.78, 0.9), memory(0.8, 0.9, 0.6, 0.9, theory_holds=False)),
    "S3": (memory(0.8, 0.5, 0.78, 0.9), memory(0.4, 0.5, 0.78, 0.9)),
    "S3b": (memory(0.9, 0.5, 0.78, 0.9), memory(0.7, 0.5, 0.8, 0.9)),
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


def test_every_claim_id_is_stated_in_docs_claims_md():
    text = (Path(__file__).resolve().parent.parent / "docs" / "claims.md").read_text(encoding="utf-8")
    for claim_id, heading in claims.CLAIM_IDS.items():
        # the scaling rules are a section there, not a numbered claim
        expected = "**SCALE: scaling rules.**" if claim_id == "SCALE" else f"**{claim_id} {heading}"
        assert expected in text, claim_id


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
    assert claim.verdict(Evidence(sweeps={"long_context": seeded(rows)}))[1] == "inconclusive"


def test_b2_and_b3_are_untestable_where_the_baseline_shows_no_effect():
    b2 = next(c for c in CLAIMS if c.id == "B2")
    ours, verdict = b2.verdict(length_gen(0.0, 0.01, softmax_drop=0.0))  # no variant fades: nothing to repair
    assert verdict == "inconclusive" and ours.startswith("untestable") and "no loss by the seed rule" in ours
    assert "no fading to repair" in ours
    b3 = next(c for c in CLAIMS if c.id == "B3")
    ours, verdict = b3.verdict(sinks(0.03, 0.02))  # below a uniform row's weight on the first token (0.04)
    assert verdict == "inconclusive" and "softmax formed no dormant sink to remove" in ours


def test_a_softmax_head_on_the_first_token_everywhere_is_not_a_dormant_sink():
    evidence = sinks(0.7, 0.05)
    for r in evidence.sweeps["sinks"]:
        r["sink.first_weight_active"] = r["sink.first_weight_dormant"]  # as much at the rows where it copies
    b5 = next(c for c in CLAIMS if c.id == "B5")
    assert b5.verdict(evidence)[1] == "not reproduced"
    assert next(c for c in CLAIMS if c.id == "B3").verdict(evidence)[1] == "inconclusive"


def test_b5_shows_the_deeper_models_without_judging_them():
    evidence = sinks(0.7, 0.05)
    evidence.sweeps["sinks"] += [{**r, "model.num_layers": "2", "sink.first_weight_dormant": "0.0"}
                                 for r in evidence.sweeps["sinks"] if r["model.attention.name"] == "softmax"]
    ours, verdict = next(c for c in CLAIMS if c.id == "B5").verdict(evidence)
    assert verdict == "reproduced" and "2 layers: softmax first-token weight 0.000" in ours, ours


def test_b5_is_partly_where_relu_sinks_as_much_as_softmax():
    b5 = next(c for c in CLAIMS if c.id == "B5")
    ours, verdict = b5.verdict(sinks(0.7, 0.05, relu_share=0.7))
    assert verdict == "partly" and "relu has a sink" in ours, ours


def test_b3_grades_each_remover_and_each_null_variant():
    b3 = next(c for c in CLAIMS if c.id == "B3")
    ours, verdict = b3.verdict(sinks(0.7, 0.7))  # rows switched off, the sink not removed
    assert verdict == "partly" and "sink removed by: neither" in ours and "switched off by: softpick, rela_g" in ours
    without_rela = sinks(0.7, 0.05)
    without_rela.sweeps["sinks"] = [r for r in without_rela.sweeps["sinks"] if r["model.attention.name"] != "rela_g"]
    ours, verdict = b3.verdict(without_rela)  # every judged part holds, one part was not trained
    assert verdict == "partly" and "unjudged part of the claim: rela_g" in ours, ours


def test_b2_fails_a_claimant_that_loses_more_than_a_softmax_that_does_not_fade():
    b2 = next(c for c in CLAIMS if c.id == "B2")
    ours, verdict = b2.verdict(length_gen(-0.02, -0.3, softmax_drop=-0.01))  # stick-breaking fades, softmax not
    assert verdict == "not reproduced" and "no loss by the seed rule" in ours, ours
    assert "unjudged part of the claim: ssmax" in ours  # tied with a softmax that loses nothing
    ours, verdict = b2.verdict(length_gen(0.05, 0.06, softmax_drop=-0.01))  # both gain where softmax holds
    assert verdict == "reproduced", ours


def test_b2_judges_only_the_claimants_that_learned():
    evidence = length_gen(-0.05, -0.02)
    for r in evidence.sweeps["length_gen"]:
        if r["model.attention.name"] == "stick_breaking":
            r.update(test_accuracy="0.1", learned="0")
    ours, verdict = next(c for c in CLAIMS if c.id == "B2").verdict(evidence)
    assert "not judged: stick_breaking on mqar, stick_breaking on needle" in ours
    # ssmax passed where it was judged, but half of the claim (stick-breaking) was judged nowhere
    assert verdict == "partly" and "unjudged part of the claim: stick_breaking" in ours, ours


def test_s5_tie_of_two_learned_models_is_partly():
    claim = next(c for c in CLAIMS if c.id == "S5")
    assert claim.verdict(long_context(0.9, 0.9))[1] == "partly"


def test_s5_below_the_papers_effect_length_is_inconclusive():
    claim = next(c for c in CLAIMS if c.id == "S5")
    rows = seeded([row(n, task__seq_len=128, test_accuracy=acc) for n, acc in (("reluformer", 0.6), ("softmax", 0.9))])
    ours, verdict = claim.verdict(Evidence(sweeps={"long_context": rows}))
    assert verdict == "inconclusive" and "below the 512" in ours, ours


def test_s5_judges_the_longest_length_where_either_learned():
    claim = next(c for c in CLAIMS if c.id == "S5")
    rows = [row("reluformer", task__seq_len=512, test_accuracy=0.9), row("softmax", task__seq_len=512, test_accuracy=0.7),
            row("reluformer", task__seq_len=1024, test_accuracy=0.3), row("softmax", task__seq_len=1024, test_accuracy=0.3)]
    ours, verdict = claim.verdict(Evidence(sweeps={"long_context": seeded(rows)}))
    assert verdict == "reproduced" and "length 512" in ours


def test_a_difference_inside_the_seed_noise_is_a_tie():
    assert claims.compare([0.80, 0.82, 0.85], [0.79, 0.80, 0.81]) == 0  # leave 0.85 out: 0.81 vs 0.80 < noise 0.02
    assert claims.compare([0.80, 0.82, 0.85], [0.50, 0.52, 0.51]) == 1
    assert claims.compare([0.50, 0.52, 0.51], [0.80, 0.82, 0.85]) == -1
    assert claims.compare([0.8, 0.9, 0.85], [0.8, 0.9, 0.85]) == 0


def test_a_single_failed_seed_does_not_make_a_tie():
    # the quick ledger's S5 before this rule: one ReLUFormer seed at chance widened the spread (max - min 0.58) past
    # a 0.41 deficit, and the verdict read as a tie; the seed rule sets that seed aside
    softmax, reluformer = [0.952, 0.983, 0.960], [0.846, 0.262, 0.850]
    assert claims.compare(reluformer, softmax, margin=0.02) == -1
    rows = seeded([row("softmax", task__seq_len=1024, test_accuracy=0.0)])
    for r, acc in zip(rows, softmax):
        r["test_accuracy"] = str(acc)
    relu_rows = [row("reluformer", task__seq_len=1024, train__seed=i, test_accuracy=acc) for i, acc in enumerate(reluformer)]
    ours, verdict = next(c for c in CLAIMS if c.id == "S5").verdict(Evidence(sweeps={"long_context": rows + relu_rows}))
    assert verdict == "not reproduced", ours


def test_a_single_failed_seed_does_not_make_a_win():
    assert claims.compare([0.9, 0.9, 0.9], [0.9, 0.91, 0.3]) == 0  # without the failed seed the groups agree
    assert claims.compare([0.9, 0.91, 0.3], [0.9, 0.9, 0.9]) == 0
    assert claims.compare([0.9, 0.9, 0.9], [0.3, 0.31, 0.9]) == 1  # two failed seeds of three: a difference


def test_fewer_than_three_seeds_are_inconclusive():
    with pytest.raises(claims.TooFewSeeds):
        claims.compare([0.9, 0.9], [0.1, 0.1, 0.1])
    two = Evidence(sweeps={"long_context": [{**r, "train.seed": str(seed)} for r in long_context(0.9, 0.5)
                                            .sweeps["long_context"] if r["train.seed"] == "0" for seed in (0, 1)]})
    ours, verdict = next(c for c in CLAIMS if c.id == "S5").verdict(two)
    assert verdict == "inconclusive" and ours.startswith("too few seeds"), ours


def test_a_group_learned_when_most_of_its_seeds_did():
    runs = seeded([row("softmax", test_accuracy=0.9)])
    assert claims.learned(runs)
    runs[0].update(learned="0")
    assert claims.learned(runs)  # one of three failed
    runs[1].update(learned="0")
    assert not claims.learned(runs)


def paper_stability(relu_learned: bool, relu_ratio: float, setting: str = "paper") -> Evidence:
    """relu and the two ReLAs at one cell; ReLA learns; relu's output / residual at init is ``relu_ratio``."""
    placement = dict(model__norm_placement="post", model__init="unit_scaling") if setting == "paper" else {}
    rows = [row("relu", test_accuracy=0.9 if relu_learned else 0.3, train__lr=3e-3, task__seq_len=32,
                probe__output_ratio_at_init__max=relu_ratio, **placement)]
    rows += [row(n, test_accuracy=0.9, train__lr=3e-3, task__seq_len=32, probe__output_ratio_at_init__max=0.5,
                 **placement) for n in ("rela_i", "rela_g", "reluformer")]
    return Evidence(sweeps={"stability": seeded(rows)})


def test_a_probe_without_the_mechanism_turns_not_reproduced_into_inconclusive():
    r2 = next(c for c in CLAIMS if c.id == "R2")
    ours, verdict = r2.verdict(paper_stability(relu_learned=True, relu_ratio=0.012, setting="recipe"))
    assert verdict == "inconclusive" and ours.startswith("untestable") and "0.012x the residual" in ours, ours
    ours, verdict = r2.verdict(paper_stability(relu_learned=True, relu_ratio=12.0))
    assert verdict == "not reproduced" and "out/res 12x" in ours, ours  # the mechanism is there: a finding
    ours, verdict = r2.verdict(paper_stability(relu_learned=False, relu_ratio=12.0))
    assert verdict == "reproduced" and ours.startswith("paper setting"), ours


def test_the_paper_setting_decides_where_both_were_run():
    both = paper_stability(relu_learned=False, relu_ratio=12.0)
    both.sweeps["stability"] += paper_stability(relu_learned=True, relu_ratio=0.01, setting="recipe").sweeps["stability"]
    ours, verdict = next(c for c in CLAIMS if c.id == "R2").verdict(both)
    assert verdict == "reproduced" and "recipe setting" in ours, ours


def test_d1_ignores_lengths_where_neither_learned_and_seeds_tie():
    claim = next(c for c in CLAIMS if c.id == "D1")
    rows = []
    arm = dict(task__num_kv_pairs=8, model__d_model=32, model__num_heads=1)
    for length, soft, lin in ((64, 1.0, 0.99), (256, 0.98, 0.40), (1024, 0.03, 0.02)):
        rows += [row("softmax", task__seq_len=length, test_accuracy=soft, **arm),
                 row("linear", task__seq_len=length, test_accuracy=lin, **arm)]
    ours, verdict = claim.verdict(Evidence(sweeps={"mqar_pairs": seeded(rows)}))
    assert verdict == "reproduced" and "T=1024: neither learned" in ours


def test_r2_counts_plain_relu_failing_where_rela_learns():
    claim = next(c for c in CLAIMS if c.id == "R2")
    rows = []
    for lr, relu_status, relu_acc in (("0.001", "finished", 0.97), ("0.03", "diverged", "")):
        rows.append(row("relu", train__lr=lr, status=relu_status, test_accuracy=relu_acc,
                        learned=int(relu_acc != "")))
        rows += [row(n, train__lr=lr, test_accuracy=0.97) for n in ("rela_i", "rela_g")]
    rows = seeded([{**r, "task.seq_len": "32"} for r in rows])
    assert claim.verdict(Evidence(sweeps={"stability": rows}))[1] == "reproduced"
    # the same, but the normalised variants diverge too: no learning rate where they learned beside relu's failure
    for r in rows:
        if r["train.lr"] == "0.03":
            r.update(status="diverged", test_accuracy="", learned="0")
    assert claim.verdict(Evidence(sweeps={"stability": rows}))[1] == "not reproduced"


def test_r6_needs_more_null_rows_than_at_initialisation():
    r6 = next(c for c in CLAIMS if c.id == "R6")
    ours, verdict = r6.verdict(heads({"attn.null_rate.max": 0.016, "probe.null_rate_at_init": 0.016},
                                     {"attn.null_rate.max": 0.0}))
    assert verdict == "partly" and "at init" in ours, ours  # above 0.01, but no more than at init


def test_r7_without_unaligned_words_cannot_say_not_reproduced():
    evidence = alignment(0.99, 0.5)
    for r in evidence.sweeps["alignment_aer"]:
        r.pop("task.particle_fraction", None)
    ours, verdict = next(c for c in CLAIMS if c.id == "R7").verdict(evidence)
    assert verdict == "inconclusive" and "no target word is unaligned" in ours, ours


def test_a_diverged_run_counts_as_zero_accuracy():
    diverged = {"status": "diverged", "test_accuracy": ""}
    assert claims.value(diverged, "test_accuracy") == 0.0


def test_render_writes_every_row_and_a_summary():
    text = make_ledger.render(CASES["R1"][0], "quick")
    assert "Profile: **quick**" in text
    ledger = text.split("\n## Setting cards")[0]
    assert ledger.count("\n| ") == len(CLAIMS) + 1  # header + one row per claim
    assert "**reproduced**" in text and "**not run**" in text
    assert "inconclusive" in text.split("\n")[4]  # the summary counts every verdict kind


def test_render_counts_the_learned_runs_the_claims_read():
    evidence = at_chance(CASES["S5"][0])
    evidence.sweeps["long_context"][0]["learned"] = "1"
    evidence.sweeps["copying_length"] = [row("softmax", test_accuracy=0.1)]  # no claim reads it: not counted
    text = make_ledger.render(evidence, "quick")
    assert "**1 of 12** (8%)" in text


def test_a_setting_card_reads_ours_from_the_runs_and_explains_only_what_differs():
    from paper_figs import settings

    evidence = paper_stability(relu_learned=False, relu_ratio=12.0)
    for r in evidence.sweeps["stability"]:
        r.update({"train.grad_clip": "0.0", "train.schedule": "noam", "model.num_layers": "2"})
    table = {factor: (paper, ours, why) for factor, paper, ours, why in settings.CARDS["R2"].table(evidence)}
    assert table["norm placement"][1:] == ("post", "")  # the paper's value: nothing to explain
    assert table["gradient clipping"][1:] == ("0.0", "")
    assert table["depth and width"][1].startswith("2 layers") and table["depth and width"][2]  # differs: why
    assert table["seeds per group"][1] == "3"
    evidence.sweeps["stability"][0]["train.grad_clip"] = "1.0"  # one run clipped: the card says so
    table = {factor: (ours, why) for factor, _, ours, why in settings.CARDS["R2"].table(evidence)}
    assert table["gradient clipping"][0] == "0.0, 1.0"
    recipe = paper_stability(relu_learned=True, relu_ratio=0.01, setting="recipe")
    assert settings.CARDS["R2"].table(recipe) == []  # the card describes the paper-setting runs only


def test_the_ledger_prints_a_setting_card_under_the_table():
    evidence = paper_stability(relu_learned=False, relu_ratio=12.0)
    text = make_ledger.render(evidence, "quick")
    cards = text.split("\n## Setting cards")[1]
    assert "### R2 (stability" in cards and "| norm placement | post-LN" in cards
    assert "### S5" not in cards  # no long_context runs: no card


def test_s3b_at_the_ceiling_is_inconclusive_not_a_tie():
    claim = next(c for c in CLAIMS if c.id == "S3b")
    verdict = claim.verdict(memory(1.0, 0.5, 0.995, 0.9))
    assert verdict[1] == "inconclusive" and "store every fact" in verdict[0], verdict


def _on(evidence: Evidence, machine: str) -> Evidence:
    sweeps = {name: [{**r, "device_name": machine} for r in rows] for name, rows in evidence.sweeps.items()}
    return Evidence(sweeps=sweeps, theory=evidence.theory, speed=evidence.speed)


def test_a_verdict_that_differs_on_another_machines_committed_ledger_is_marked(tmp_path):
    passing, failing = CASES["R1"]
    (tmp_path / "ledger_quick_2026-01-01.md").write_text(make_ledger.render(_on(failing, "CPU (other)"), "quick"))
    (tmp_path / "ledger_quick_2026-01-02.md").write_text(make_ledger.render(_on(passing, "CPU (other)"), "quick"))
    (tmp_path / "ledger_full_2026-01-03.md").write_text(make_ledger.render(_on(failing, "GPU"), "full"))
    committed = make_ledger.dated_ledgers(tmp_path, "quick")
    assert [p.name for p in committed] == ["ledger_quick_2026-01-01.md", "ledger_quick_2026-01-02.md"]
    text = make_ledger.render(_on(passing, "CPU (this)"), "quick", committed)
    assert "Machine: CPU (this)" in text
    r1 = next(line for line in text.splitlines() if line.startswith("| R1 |"))
    verdict_then = next(c for c in CLAIMS if c.id == "R1").verdict(failing)[1]
    assert f"machine-sensitive: {verdict_then} on CPU (other) (ledger_quick_2026-01-01.md)" in r1
    assert "2026-01-02" not in r1  # the same verdict there: no note
    assert "Machine-sensitive (" in text and ": R1" in text.split("Machine-sensitive (")[1].split("\n")[0]
    same_machine = make_ledger.render(_on(passing, "CPU (other)"), "quick", committed)
    assert "machine-sensitive:" not in same_machine  # the same machine twice is not a machine difference


def test_s4_counts_a_regulariser_only_where_a_normalised_control_learned():
    cells = {"32": dict(relu=0.2, rela_i=0.9, rela_g=0.9, reluformer=0.9, reg=0.9),  # a control learned
             "128": dict(relu=0.2, rela_i=0.2, rela_g=0.2, reluformer=0.3, reg=0.95)}  # none did: not a verdict
    rows = []
    for length, acc in cells.items():
        for name in ("relu", "rela_i", "rela_g", "reluformer"):
            rows.append(row(name, test_accuracy=acc[name], train__lr=1e-3, task__seq_len=length))
        rows.append(row("reluformer", test_accuracy=acc["reg"], train__lr=1e-3, task__seq_len=length,
                        model__attention__norm_loss_weight=0.1))
    ours, verdict = next(c for c in CLAIMS if c.id == "S4").verdict(Evidence(sweeps={"stability": seeded(rows)}))
    assert verdict == "partly" and "(b) regularisers do not help" in ours, ours


def test_s5_unlearned_at_its_effect_length_says_how_much_each_variant_still_rose():
    claim = next(c for c in CLAIMS if c.id == "S5")
    curve = lambda end: " ".join(f"{s}:{0.05 + (end - 0.05) * s / 1000:.4f}" for s in range(100, 1001, 100))  # noqa: E731
    rows = [row(n, task__seq_len=length, test_accuracy=end, steps_run=1000, curve__test_accuracy=curve(end),
                learned=0) for length in (128, 512) for n, end in (("reluformer", 0.25), ("softmax", 0.15))]
    ours, verdict = claim.verdict(Evidence(sweeps={"long_context": seeded(rows)}))
    assert verdict == "inconclusive"
    assert "last fifth of the 1000 steps: reluformer +0.040, softmax +0.020" in ours, ours
