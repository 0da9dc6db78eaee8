"""Every claim's criterion on fabricated results: one set that should pass, one that should fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "paper_figs"))

import claims  # noqa: E402
import make_ledger  # noqa: E402

from claims import CLAIMS, Evidence  # noqa: E402


def row(attention: str, **columns) -> dict[str, str]:
    out = {"model.attention.name": attention, "status": "finished", "train.seed": "0"}
    out.update({key.replace("__", "."): str(value) for key, value in columns.items()})
    return out


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
    rows = [{"variant": "rela_g", "length": "128", "ratio": str(rela)},
            {"variant": "sparsemax", "length": "128", "ratio": str(sparse)},
            {"variant": "entmax15", "length": "128", "ratio": str(sparse)}]
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


CASES = {
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
    "S2": (memory(0.8, 0.5, 0.78, 0.9), memory(0.8, 0.5, 0.3, 0.9, theory_holds=False)),
    "S3": (memory(0.8, 0.5, 0.78, 0.9), memory(0.4, 0.5, 0.78, 0.9)),
    "S4": (stability(0.2, 0.9, 0.95), stability(0.9, 0.9, 0.5)),
    "S5": (long_context(0.8, 0.6), long_context(0.25, 0.25)),
    "S6": (memory(0.8, 0.5, 0.78, 0.9), memory(0.8, 0.5, 0.78, 0.1)),
    "D1": (mqar([0.0, 0.1, 0.3, 0.4]), mqar([0.0, -0.1, 0.0, 0.0])),
}
THEORY_ONLY = {"S1": "S1", "D2": "D2", "K1": "K1", "K2": "K2", "K3": "K3", "Q1": "Q1", "H1": "H1",
               "SCALE": "SCALE-sigmoid"}


def test_the_ledger_has_one_row_per_claim_id_of_papers_md():
    papers = (Path(__file__).resolve().parents[2] / "shared" / "PAPERS.md")
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    expected = {"R1", "R2", "R3", "R4", "R5", "R6", "R7", "S1", "S2", "S3", "S4", "S5", "S6", "D1", "D2", "K1", "K2",
                "K3", "Q1", "H1", "SCALE"}
    assert set(ids) == expected
    if papers.exists():
        text = papers.read_text()
        for claim_id in expected - {"SCALE"}:
            assert f"**{claim_id} " in text, claim_id


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


def test_s5_tie_counts_only_when_both_learned():
    claim = next(c for c in CLAIMS if c.id == "S5")
    assert claim.verdict(long_context(0.9, 0.9))[1] == "partly"
    assert claim.verdict(long_context(0.25, 0.25))[1] == "not reproduced"


def test_a_diverged_run_counts_as_zero_accuracy():
    diverged = {"status": "diverged", "test_accuracy": ""}
    assert claims.value(diverged, "test_accuracy") == 0.0


def test_render_writes_every_row_and_a_summary():
    text = make_ledger.render(CASES["R1"][0], "quick")
    assert "Profile: **quick**" in text
    assert text.count("\n| ") == len(CLAIMS) + 1  # header + one row per claim
    assert "**reproduced**" in text and "**not run**" in text
