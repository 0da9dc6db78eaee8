"""Run by .ci/wheel inside a fresh environment where the package is installed from its wheel, from a folder
outside the clone: one smoke experiment, read back by load_run and results.load, and one variant in a model
of the user's own. Exits non-zero (an assertion) if anything is wrong."""

import subprocess
import sysconfig
from pathlib import Path

import torch

import experiments
from experiments import attention, results

site = Path(sysconfig.get_paths()["purelib"])
assert Path(experiments.__file__).resolve().is_relative_to(site.resolve()), experiments.__file__

done = subprocess.run(["attn-run", "--task", "mqar", "--attention", "rela_g", "--steps", "20", "--warmup-steps", "5",
                       "--eval-every", "10", "--no-progress"], capture_output=True, text=True)
assert done.returncode == 0, done.stderr
result_file = next(Path("results/mqar").glob("*.json"))
assert result_file.with_suffix(".safetensors").exists()
written = [p for top in ("experiments", "synthetic", "paper_figs", "results") for p in (site / top).rglob("*")
           if p.suffix in (".json", ".safetensors", ".ckpt", ".lock")] + list(site.glob("results"))
assert not written, f"results written inside the installed package: {written[:3]}"

config, model = experiments.load_run(result_file)
assert not model.training and config.attention_name == "rela_g"
table = results.load("results")
assert len(table) == 1 and table["model.attention.name"][0] == "rela_g", table

block = attention.build_module(attention.make_config("softmax"), d_model=32, num_heads=2)
x = torch.randn(2, 8, 32, requires_grad=True)
block(x, causal=True).sum().backward()
assert x.grad is not None and x.grad.shape == x.shape

shown = subprocess.run(["attn-inspect", str(result_file), "--out", "maps.png"], capture_output=True, text=True)
assert shown.returncode == 0 and Path("maps.png").exists(), shown.stderr
print("the installed wheel runs, keeps, loads and inspects a run outside the clone")
