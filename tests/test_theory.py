"""Every theory notebook runs top to bottom (fast mode) and its checks can fail."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments import attention

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "theory"
NOTEBOOKS = sorted(p.stem for p in THEORY.glob("*.py") if not p.name.startswith("_"))
EXPECTED = {"capacity", "fading", "gradients", "injectivity", "rank", "rank_collapse", "separation", "variance"}


def test_every_notebook_is_counted():
    """A guard: adding or losing a notebook must show up here, never be skipped silently."""
    assert set(NOTEBOOKS) == EXPECTED


def test_a_notebook_runs_as_a_script_and_its_claims_hold(tmp_path):
    """``python theory/variance.py``: the percent-format file as a plain script (its sympy results printed as
    text). Every notebook runs through a Jupyter kernel, its claims checked, in tests/test_report.py (the pages
    `make notebooks` builds)."""
    name = "variance"
    env = {**os.environ, "THEORY_FAST": "1", "THEORY_OUT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(THEORY / f"{name}.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    verdicts = json.loads((tmp_path / "verdicts" / f"{name}.json").read_text())
    assert verdicts and all(v["holds"] and v["checks"] >= 1 for v in verdicts), verdicts
    assert list(tmp_path.glob("*.png")), "the notebook wrote no figure"
    assert "ok " in done.stdout
    assert "IPython.core.display" not in done.stdout, "a derived result printed as an object, not as text"


def test_every_notebook_is_valid_percent_format():
    jupytext = pytest.importorskip("jupytext")
    for name in NOTEBOOKS:
        notebook = jupytext.read(THEORY / f"{name}.py")
        kinds = {cell.cell_type for cell in notebook.cells}
        assert kinds == {"markdown", "code"}, name
        assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# "), name


@pytest.fixture(scope="module")
def capacity(tmp_path_factory):
    os.environ["THEORY_FAST"] = "1"
    os.environ["THEORY_OUT"] = str(tmp_path_factory.mktemp("capacity"))
    grad_mode, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    try:
        return runpy.run_path(str(THEORY / "capacity.py"))
    finally:  # the notebook sets global torch state; later tests must not inherit it
        torch.set_grad_enabled(grad_mode)
        torch.set_default_dtype(dtype)
        os.environ.pop("THEORY_FAST")
        os.environ.pop("THEORY_OUT")


def test_capacity_check_fails_when_its_premise_is_broken(capacity):
    """K2's (N - m)_+ d_v needs values independent of the keys; values that are a linear function
    of the keys are recalled perfectly, and the notebook's own check must reject that."""
    mixing = torch.randn(capacity["M"], capacity["DV"], dtype=torch.float64)
    mc = capacity["_mc"]
    capacity["check_readout"](32)  # the premise holds: passes
    assert mc.record("K2", "premise holds", "(test)")
    capacity["check_readout"](32, make_values=lambda keys: keys @ mixing)
    assert not mc.record("K2", "premise broken", "(test)")  # the claim's verdict: does not hold
    assert any("(N - m) d_v" in what for what in mc._verdicts[-1]["failed"])


def test_a_record_rests_on_checks_of_its_own(monkeypatch):
    from theory import _mc

    monkeypatch.setattr(_mc, "_verdicts", [])
    monkeypatch.setattr(_mc, "_pending", [])
    _mc.check(True, "the only check")
    assert _mc.record("X", "first", "(test)")
    with pytest.raises(RuntimeError, match="no check of its own"):
        _mc.record("X", "made back to back with the first", "(test)")
    assert len(_mc._verdicts) == 1


def run_in_process(name: str, out: Path, monkeypatch) -> list[dict]:
    """Run a notebook in this process (fast mode) and return its verdict records."""
    from theory import _mc

    monkeypatch.setattr(_mc, "FAST", True)
    monkeypatch.setattr(_mc, "OUT", out)
    monkeypatch.setattr(_mc, "_verdicts", [])
    monkeypatch.setattr(_mc, "_pending", [])
    grad_mode, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    try:
        runpy.run_path(str(THEORY / f"{name}.py"))
    finally:  # the notebook sets global torch state; later tests must not inherit it
        torch.set_grad_enabled(grad_mode)
        torch.set_default_dtype(dtype)
    return list(_mc._verdicts)


def test_a_wrong_formula_changes_its_own_record_and_no_other(tmp_path, monkeypatch):
    """relu_len divided by sqrt(n) instead of n: SCALE-relu_n no longer holds and its ours text shows the
    measured error; S1, checked in the cell before it, and every other record are as before, number for
    number (the notebook's random draws do not depend on the weights)."""
    clean = run_in_process("variance", tmp_path / "clean", monkeypatch)
    variant = attention.get("relu_len")
    wrong = dataclasses.replace(variant, weights=lambda q, k, **params: variant.weights(q, k, **params)
                                * k.shape[-2] ** 0.5)
    get = attention.get
    monkeypatch.setattr(attention, "get", lambda name: wrong if name == "relu_len" else get(name))
    broken = run_in_process("variance", tmp_path / "broken", monkeypatch)

    assert all(r["holds"] for r in clean), clean
    assert [r["claim"] for r in broken] == [r["claim"] for r in clean]
    changed = [(before, after) for before, after in zip(clean, broken) if before != after]
    assert [after["claim"] for _, after in changed] == ["SCALE-relu_n"]
    (before, after), = changed
    assert not after["holds"] and after["statement"] == before["statement"]
    assert len(after["failed"]) == after["checks"] == 3 and all("relu_len" in what for what in after["failed"])
    error = lambda record: float(re.search(r"largest relative error ([\d.]+)%", record["ours"]).group(1))  # noqa: E731
    assert error(before) < 20 and error(after) > 1000  # Var is sigma^2/2, not sigma^2/(2n): off by n - 1


def test_a_notebook_page_draws_its_math_as_mathml_and_loads_no_script(tmp_path):
    """The page renderer of `make notebooks` on one notebook: inline, display and heading math from the markdown
    and a LaTeX output (a sympy result) all become <math> elements; no script, nothing fetched."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("latex2mathml")
    from theory import _html

    latex_output = nbformat.v4.new_output("display_data", data={"text/latex": "$\\displaystyle c = e^{2}$",
                                                                 "text/plain": "c = exp(2)"})
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Softmax: $e^{\\sigma^2}/n$\n\nwith\n\n"
                                      "$$\\frac{m_2}{m_1^2} = e^{\\sigma^2}$$"),
        nbformat.v4.new_code_cell("_mc.show('c', c)", outputs=[latex_output]),
    ])
    nbformat.write(notebook, tmp_path / "page.ipynb")
    page = _html.render(tmp_path / "page.ipynb")
    assert page.count("<math") == 3 and page.count('<math display="block">') == 2
    assert "<mfrac>" in page and "<msup>" in page and "ns0:" not in page  # typeset, and drawn in the heading too
    assert "$" not in page.split("<body")[1] and "<script" not in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)
