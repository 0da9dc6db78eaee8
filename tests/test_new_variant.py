"""Adding an attention variant is one new file: registered from it alone, it trains, is benchmarked in each of
its forms, gets its own colour in the figures and its rows pass through the ledger.

The variant below lives in a temporary module outside the package, as a
researcher's first try would; nothing else in the repository is edited.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from experiments import attention, bench_scaling, sweep, sweeps
from experiments.runs import run
from experiments.sweeps._common import make_config
from paper_figs import _plot, make_ledger, plot_heads
from paper_figs._rows import load

TOY = '''
"""Squared-ReLU attention divided by its row sum: a toy variant for the extension test."""

import dataclasses

import torch

from experiments.attention import register
from experiments.attention.base import AttentionModule, Variant, causal_mask, check_qkv
from experiments.config import param, require


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    eps: float = param(1e-6, "added to each row sum")

    def __post_init__(self):
        require(self.eps > 0, f"eps must be positive, got {self.eps}")


def weights(q, k, *, causal, eps=1e-6):
    scores = torch.relu(q @ k.transpose(-2, -1)) ** 2  # (B, H, Tq, Tk)
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0.0)
    return scores / (scores.sum(-1, keepdim=True) + eps)


def attend(q, k, v, *, causal, eps=1e-6):
    check_qkv(q, k, v)
    return weights(q, k, causal=causal, eps=eps) @ v


class ToyAttention(AttentionModule):
    core = staticmethod(attend)
    matrix = staticmethod(weights)


register(Variant(name="toy_relu2", config=ToyConfig, module=ToyAttention, attend=attend, reference=attend,
                 weights=weights, summary="relu(QK^T)^2, row-normalised (a test's toy)"))
'''


@pytest.fixture
def toy_variant(tmp_path):
    path = tmp_path / "toy_relu2.py"
    path.write_text(textwrap.dedent(TOY))
    spec = importlib.util.spec_from_file_location("toy_relu2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers the variant, as discovery would for a file in the package
    yield "toy_relu2"
    attention.unregister("toy_relu2")
    sys.modules.pop("toy_relu2", None)


def test_a_variant_from_one_new_file_trains_benchmarks_plots_and_reaches_the_ledger(toy_variant, tmp_path):
    name = toy_variant
    assert name in attention.names() and attention.get(name).forms == ()

    config = make_config(("mqar", dict(vocab_size=16, seq_len=16, num_kv_pairs=2, num_test_examples=16)), name,
                         seed=0, train=dict(steps=3, warmup_steps=1, eval_every=3, batch_size=4), d_model=16,
                         num_heads=2)
    result, cached = run(config, root=tmp_path / "results", progress=False)
    assert not cached and result["steps_run"] == 3 and result["status"] in ("finished", "reached_target")

    assert {"label": name, "variant": name, "form": None} in bench_scaling.cases("cpu")

    shade = _plot.color(name)
    assert shade == _plot.color(name) and shade not in _plot.COLORS.values() and shade.startswith("#")

    csv_path = tmp_path / "heads.csv"
    csv_path.write_text(sweep.collect([config], sweep="heads", profile="smoke", root=tmp_path / "results"))
    plot_heads.plot(load(str(csv_path)), str(tmp_path / "heads.png"))
    assert (tmp_path / "heads.png").read_bytes()[:4] == b"\x89PNG"

    evidence = make_ledger.gather(tmp_path, tmp_path / "no-theory", None)
    assert [r["model.attention.name"] for r in evidence.sweeps["heads"]] == [name]
    ledger = make_ledger.render(evidence, "smoke")
    assert ledger.count("\n| R") == 7  # every claim still gets its row; none reads the toy as one of its variants


def test_a_module_of_core_and_matrix_passes_its_config_fields_to_attend_and_weights(toy_variant):
    variant = attention.get(toy_variant)
    module = attention.build_module(attention.make_config(toy_variant, eps=0.5), d_model=8, num_heads=2)
    assert type(module).__name__ == "ToyAttention" and module.core_params == {"eps": 0.5}
    q, k, v = (torch.randn(1, 2, 5, 4, generator=torch.Generator().manual_seed(i)) for i in range(3))
    assert torch.equal(module.mix(q, k, v, causal=True), variant.attend(q, k, v, causal=True, eps=0.5))
    assert torch.equal(module.head_weights(q, k, causal=True), variant.weights(q, k, causal=True, eps=0.5))
    assert not torch.allclose(module.head_weights(q, k, causal=True), variant.weights(q, k, causal=True))


def test_a_variant_names_its_module_class():
    variant = attention.get("relu")
    fields = dict(name="bad", config=variant.config, attend=variant.attend, reference=variant.reference,
                  weights=variant.weights, summary="")
    with pytest.raises(TypeError, match="module"):
        attention.Variant(**fields)
    with pytest.raises(TypeError, match="module must be an AttentionModule subclass"):
        attention.Variant(**fields, module=torch.nn.Linear)


def test_the_readme_lists_every_figure_make_builds_and_each_has_its_plot_script():
    root = Path(__file__).resolve().parent.parent
    makefile = (root / "Makefile").read_text()
    built = re.search(r"^SWEEPS := (.*)$", makefile, re.M).group(1).split()
    assert set(built) == set(sweeps.names()) - {"lr_search"}  # every sweep is built, lr_search on request
    readme = (root / "README.md").read_text()
    table = readme[readme.index("## Figures"):readme.index("## Attention variants")]
    first_cells = re.findall(r"^\| ([^|]+) \|", table, re.M)
    listed = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)\.png`", cell)}
    assert listed == {*built, "speed"}
    for name in listed:
        assert (root / "paper_figs" / f"plot_{name}.py").exists(), name
