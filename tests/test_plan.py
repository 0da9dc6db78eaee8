"""The plan (experiments.plan): rows that match the sweeps, a FLOP model that matches the model, nothing run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import synthetic
from experiments import plan, sweep, sweeps
from experiments.train import build_model

H100 = "NVIDIA H100 80GB HBM3"


def rows(text: str) -> dict[str, list[str]]:
    """The table's rows by sweep name (the first column), the header and total left out."""
    names = set(sweeps.names())
    return {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] and
            line.split()[0] in names}


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_a_row_per_sweep_with_its_runs_and_steps(profile, capsys):
    assert plan.main(["--profile", profile, "--device", "cpu", "--workers", "2"]) == 0
    table = rows(capsys.readouterr().out)
    assert sorted(table) == plan.default_sweeps()
    for name, row in table.items():
        configs = sweeps.configs(name, profile)
        assert int(row[1]) == len(configs), name
        assert int(row[2].replace(",", "")) == sum(c.train.steps for c in configs), name


def test_the_dense_flops_are_the_models_linear_layers():
    """Forward FLOPs less the T^2 terms equal 2 x rows x in x out summed over every nn.Linear the model runs,
    counted by hooks on a real forward, for each (variant, decoder-only / encoder-decoder) of the sweeps."""
    seen = {}
    for name in plan.default_sweeps():
        for config in sweeps.configs(name, "smoke"):
            seen.setdefault((config.attention_name, synthetic.kind_of(config.task)), config)
    assert {kind for _, kind in seen} == {"lm", "seq2seq"}
    for (variant, kind), config in seen.items():
        model = build_model(config.task, config.model)
        counted = [0]

        def hook(module, inputs, output):
            counted[0] += 2 * inputs[0].numel() * module.out_features

        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(hook)
        batch = 3
        arguments, _ = model.split_batch(synthetic.generate(config.task, batch, torch.Generator().manual_seed(0)))
        with torch.no_grad():
            model(*arguments)
        target, source = config.task.seq_len, getattr(config.task, "source_len", 0)
        maps = 4 * batch * config.model.num_layers * config.model.d_model * (target**2 + source**2 + target * source)
        assert plan.forward_flops(config, batch) - maps == counted[0], f"{variant} {kind}"


def test_flops_per_step_grow_faster_than_length():
    configs = sweeps.configs("long_context", "full")
    by_length = {c.task.seq_len: plan.step_flops(c) for c in configs if c.attention_name == "softmax"}
    shortest, longest = min(by_length), max(by_length)
    assert by_length[longest] > by_length[shortest]
    assert by_length[longest] / by_length[shortest] > longest / shortest  # the T^2 terms
    planned = plan.plan_sweep("long_context", configs, plan.make_device("cpu"), 1)
    assert planned.largest.config.task.seq_len == longest


def test_the_largest_full_sweeps_are_the_ones_their_designs_make_largest():
    device = plan.make_device("cuda", H100)
    plans = {p.name: p for p in plan.plans_for(plan.default_sweeps(), "full", device, 2)}
    assert max(plans.values(), key=lambda p: p.steps).name == "memory"  # 63 memories, 20k steps each
    assert max(plans.values(), key=lambda p: p.train_flops).name == "sinks"  # the authors' width 256, batch 512


def test_halving_the_throughput_doubles_the_compute_time():
    configs = sweeps.configs("long_context", "full")
    fast = plan.plan_sweep("long_context", configs, plan.make_device("cpu", tflops=0.1), 1)
    slow = plan.plan_sweep("long_context", configs, plan.make_device("cpu", tflops=0.05), 1)
    assert slow.compute_seconds == pytest.approx(2 * fast.compute_seconds, rel=1e-12)
    overhead = sum(r.overhead_seconds + r.map_seconds for r in fast.runs)
    assert overhead == pytest.approx(sum(r.overhead_seconds + r.map_seconds for r in slow.runs), rel=1e-12)
    assert slow.wall_seconds == pytest.approx(overhead + 2 * fast.compute_seconds, rel=1e-9)  # one worker: the sum
    gpu = [plan.plan_sweep("long_context", configs, plan.make_device("cuda", H100, tflops=t), 2).wall_seconds
           for t in (1000.0, 500.0)]
    assert gpu[1] > 1.5 * gpu[0]  # FLOP-bound on a shared GPU


def test_a_variant_that_materialises_its_weights_pays_for_each_on_cpu_only():
    softmax, reluformer = (next(c for c in sweeps.configs("long_context", "deep")
                                if c.attention_name == name and c.task.seq_len == 512) for name in ("softmax", "reluformer"))
    cpu = plan.make_device("cpu")
    assert plan.estimate_run(softmax, cpu).map_seconds == 0.0  # SDPA's fused kernel builds no T x T
    heavy = plan.estimate_run(reluformer, cpu)
    assert reluformer.model.attention.form == "blockwise" and reluformer.model.attention.block_size == 128
    blocks = 4 * 5 // 2  # of the 4 x 4 blocks of 128 tokens, those on and below the diagonal
    per_step = reluformer.train.batch_size * reluformer.model.num_heads * reluformer.model.num_layers * 128**2 * blocks
    assert heavy.map_seconds >= reluformer.train.steps * per_step * plan.CPU_MAP_SECONDS_PER_WEIGHT
    materialised = dataclasses.replace(reluformer, model=dataclasses.replace(
        reluformer.model, attention=dataclasses.replace(reluformer.model.attention, form="materialised")))
    assert plan.estimate_run(materialised, cpu).map_seconds == pytest.approx(heavy.map_seconds * 16 / 10)
    assert heavy.seconds > plan.estimate_run(softmax, cpu).seconds
    assert plan.estimate_run(reluformer, plan.make_device("cuda", H100)).map_seconds == 0.0


def test_a_gpu_name_sets_the_peak_and_an_unknown_one_takes_the_stated_default():
    assert plan.make_device("auto", H100).peak_tflops == 989.0
    assert plan.make_device("auto", "NVIDIA H100 PCIe").peak_tflops == 756.0
    assert plan.make_device("auto", "NVIDIA L40S").peak_tflops == 362.0  # not L4's
    unknown = plan.make_device("auto", "Some Future GPU")
    assert unknown.peak_tflops == plan.CUDA_DEFAULT_PEAK_TFLOPS and "default" in unknown.source


def test_more_workers_never_take_longer_and_one_run_bounds_them():
    assert plan.makespan([5, 4, 3, 3, 1], 1) == 16
    assert plan.makespan([5, 4, 3, 3, 1], 2) == 8
    assert plan.makespan([5, 4, 3, 3, 1], 10) == 5


def test_sweep_plan_runs_nothing_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("--plan trained something")

    monkeypatch.setattr("experiments.runs.train", no_training)
    results = tmp_path / "results"
    assert sweep.main(["long_context", "--profile", "full", "--plan", "--results-dir", str(results)]) == 0
    table = rows(capsys.readouterr().out)
    assert list(table) == ["long_context"] and int(table["long_context"][1]) == 24
    assert not results.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, names", [
    (["--profile", "huge"], "valid profiles are ['smoke', 'quick', 'deep', 'full']"),
    (["--sweeps", "nope"], "valid names are ["),
    (["--device", "cpu", "--device-name", H100], "--device-name"),
], ids=["profile", "sweep", "cpu-with-gpu-name"])
def test_bad_input_is_one_line_and_status_2(argv, names, capsys):
    with pytest.raises(SystemExit) as ended:
        plan.main(argv)
    assert ended.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and names in captured.err


def test_sweep_plan_with_an_unknown_profile_is_one_line(capsys):
    with pytest.raises(SystemExit) as ended:
        sweep.main(["long_context", "--profile", "huge", "--plan"])
    assert ended.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_measured_step_sets_the_sweeps_throughput():
    configs = sweeps.configs("mqar_pairs", "quick")
    device = plan.make_device("cpu")
    modelled = plan.plan_sweep("mqar_pairs", configs, device, 2)
    model_step = modelled.largest.seconds / modelled.largest.steps
    slower = plan.plan_sweep("mqar_pairs", configs, device, 2, measured_step_s=4 * model_step)
    assert slower.wall_seconds > 3 * modelled.wall_seconds
    tiny = dataclasses.replace(configs[0], train=dataclasses.replace(configs[0].train, batch_size=2))
    assert plan.measure_step(tiny, device, steps=1) > 0


def test_a_sweep_hands_out_its_longest_runs_first():
    configs = sweeps.configs("long_context", "deep")
    ordered = sweep.longest_first(configs)
    assert sorted(c.key() for c in ordered) == sorted(c.key() for c in configs)  # the same runs, reordered
    assert [c.task.seq_len for c in ordered[:3]] == [512] * 3
    assert {c.attention_name for c in ordered[:3]} == {"reluformer"}  # its materialised maps cost the most
