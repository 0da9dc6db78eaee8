"""Before anything runs: each sweep's runs, steps, FLOPs and an estimated wall time on a device.

    python -m experiments.plan --profile full --device-name "NVIDIA H100 80GB HBM3"
    python -m experiments.plan --profile quick --device cpu --workers 2
    python -m experiments.sweep long_context --profile full --plan

Nothing is trained and nothing is written; no GPU is needed to plan for one.
The estimate is a stated model, every constant of which is in the block below:

- FLOPs. A forward pass of a decoder-only model on ``B`` sequences of ``T``
  tokens costs ``2 B T P`` for its ``P`` matrix-product parameters (per layer
  ``q, k, v, o`` and the MLP's two matrices, ``(4 + 2 mlp_ratio) d^2``, plus the
  output projection ``d V``; embeddings are look-ups) plus ``4 B T^2 d`` per
  layer for ``Q K^T`` and ``P V`` (Kaplan et al. 2020, arXiv 2001.08361, sec.
  2.1; the causal half is not taken off: the materialised variants compute the
  whole map and mask it). The backward costs twice the forward, so a training
  step is ``3 x`` a forward (the familiar ``6 P`` per token). An
  encoder-decoder counts its encoder on the source, its decoder on the target
  and cross-attention's ``T S`` terms. Evaluations are forward passes on the
  test set, at every ``eval_every`` steps, once at the end and once per
  ``train.test_lengths`` length.
- Time. A step takes a fixed overhead (Python and kernel launches) plus its
  FLOPs over an effective throughput (a peak times an efficiency). Runs are
  spread over the workers longest first; on one GPU the workers share it, so
  a sweep takes at least the sum of its runs' compute time.
- Steps are an upper bound: a run with ``train.target_accuracy`` stops once it
  reaches that accuracy.

``--measure`` times a few training steps of each sweep's largest config on
this device and uses that in place of the model's throughput for the sweep
(the other runs scaled by their FLOPs, the overhead kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence

import torch

import synthetic
from experiments import cli, sweeps
from experiments.config import ConfigError
from experiments.runs import EVAL_BATCH, RunConfig
from experiments.train import at_length

# --- the model's constants (one place; each with its source) ----------------------------------------------------
# CPU: one thread's fp32 throughput on a 2-core machine with the other core busy (a 1024^3 matmul runs at about
# 52 GFLOP/s), and the share of it a recall-model training step reaches (width 32, 2 layers, T=64, batch 64:
# about 40%); `--measure` replaces both with this machine's figure. One thread per worker (the sweep runner's).
CPU_PEAK_TFLOPS = 0.052
# The efficiency, the step's fixed cost and the cost of a materialised attention weight are fitted (least
# squares) to the wall times of the deep profile's runs, two workers on the 2-core machine: the fixed cost holds
# ~400 eager PyTorch ops (forward, backward, clipping, AdamW, the batch) and the evaluation chunks, checkpoints
# and probes spread over the steps.
CPU_EFFICIENCY = 0.34
CPU_STEP_OVERHEAD_S = 0.013
# A variant whose CPU path builds the (B, H, T, T) weights (ReLU family, sparsemax, stick-breaking, softpick)
# pays for element-wise passes over each weight, forward and backward, which the FLOP count leaves out.
CPU_MAP_SECONDS_PER_WEIGHT = 42e-9
# The variants that never build those weights on CPU: SDPA's fused kernel (softmax and the variants that call it)
# and the linear family's chunked form.
NO_MAP_ON_CPU = ("softmax", "softmax1", "softmax_ln", "ssmax", "linear", "norm_linear", "inline")
# CUDA: bf16 dense tensor-core peak (no sparsity), TFLOP/s, from NVIDIA's data sheets, matched against
# torch.cuda.get_device_name() in this order (the first name contained in it wins: "H100 PCIe" before "H100").
CUDA_PEAK_TFLOPS = (
    ("B200", 2250.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM5 / "H100 80GB HBM3"
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
CUDA_DEFAULT_PEAK_TFLOPS = 312.0  # a card not in the table: an A100's, stated in the output
# Share of that peak these models reach: widths of 16-256 and head dims of 16-64 make every product
# memory-bound ((B T, d) x (d, d) at d=64 does ~32 FLOP per byte moved, a tenth of what an H100 needs to reach
# its peak), and the materialised variants add element-wise passes over each (B, H, T, T) map.
CUDA_EFFICIENCY = 0.05
# A CUDA step's fixed cost: ~400 kernel launches (the same ops as on CPU, plus autocast's casts) at ~12 us of
# host time each in eager PyTorch (no torch.compile, no CUDA graphs); these models are too small to hide it.
CUDA_STEP_OVERHEAD_S = 0.005
EVAL_OVERHEAD_FRACTION = 1 / 3  # an evaluation chunk of EVAL_BATCH examples: a forward only, no backward/optimiser
NOT_IN_ALL = ("lr_search",)  # run by `make lr-search`, not by `make all`: planned only when named
MEASURE_STEPS = 3  # timed steps of --measure, after one warm-up step
MEASURE_MAX_STEP_S = 5.0  # --measure skips a config the model puts above this per step (it says so)


@dataclasses.dataclass(frozen=True)
class Device:
    """Where the runs are planned for: a throughput (``peak_tflops`` x ``efficiency``) and a per-step overhead."""

    kind: str  # cpu or cuda
    name: str
    peak_tflops: float
    efficiency: float
    step_overhead_s: float
    source: str  # where the peak came from, for the assumptions
    map_seconds_per_weight: float = 0.0  # a materialised attention weight per training step (CPU only)

    @property
    def flops_per_second(self) -> float:
        return self.peak_tflops * 1e12 * self.efficiency


def cuda_peak(name: str) -> tuple[float, str]:
    """The bf16 dense peak of a card by its name, and where the number came from."""
    for key, peak in CUDA_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return peak, f"table entry {key!r}"
    return CUDA_DEFAULT_PEAK_TFLOPS, f"not in the table: the default {CUDA_DEFAULT_PEAK_TFLOPS:g} (an A100's)"


def make_device(kind: str = "auto", name: str | None = None, tflops: float | None = None) -> Device:
    """The device to plan for. ``auto``: CUDA if a name is given or this machine has it, else CPU.

    ``tflops`` replaces the peak (bf16 dense on CUDA, one thread's fp32 on CPU); the efficiency still applies.
    """
    if kind == "auto":
        kind = "cuda" if name is not None or torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        if name is not None:
            raise ConfigError("--device-name names a GPU; it does not go with --device cpu")
        peak, source = (tflops, "--tflops") if tflops is not None else (CPU_PEAK_TFLOPS, "a 2-core CPU, measured")
        return Device("cpu", "cpu (one thread per worker)", peak, CPU_EFFICIENCY, CPU_STEP_OVERHEAD_S, source,
                      CPU_MAP_SECONDS_PER_WEIGHT)
    if name is None:
        if not torch.cuda.is_available():
            if tflops is None:
                raise ConfigError("--device cuda on a machine without CUDA needs --device-name (e.g. "
                                  "'NVIDIA H100 80GB HBM3') or --tflops")
            name = "a GPU"
        else:
            name = torch.cuda.get_device_name(0)
    peak, source = (tflops, "--tflops") if tflops is not None else cuda_peak(name)
    return Device("cuda", name, peak, CUDA_EFFICIENCY, CUDA_STEP_OVERHEAD_S, source)


# --- FLOPs ------------------------------------------------------------------------------------------------------


def forward_flops(config: RunConfig, batch: int, length: int | None = None) -> float:
    """FLOPs of one forward pass on ``batch`` examples (the task's length, or ``length`` tokens)."""
    task, model = config.task, config.model
    width, layers = model.d_model, model.num_layers
    block = (4 + (2 * model.mlp_ratio if model.mlp else 0)) * width * width  # q, k, v, o; MLP up and down
    target = length or task.seq_len
    head = width * task.vocab_size
    if synthetic.kind_of(task) == "seq2seq":
        source = task.source_len
        dense = 2 * batch * (source * layers * block  # encoder
                             + target * layers * (block + 2 * width * width)  # decoder, cross-attention q and o
                             + source * layers * 2 * width * width  # cross-attention k and v, on the source
                             + target * head)
        maps = 4 * batch * layers * width * (source**2 + target**2 + target * source)
        return float(dense + maps)
    dense = 2 * batch * target * (layers * block + head)
    maps = 4 * batch * layers * width * target**2  # Q K^T and P V, the whole T x T
    return float(dense + maps)


def map_weights(config: RunConfig, batch: int, length: int | None = None) -> int:
    """Attention weights a forward pass on ``batch`` examples materialises (every layer and head, the whole
    T x T, or the blockwise form's blocks on and below the diagonal; cross-attention's T x S too); 0 for a
    variant that never builds them on CPU (:data:`NO_MAP_ON_CPU`)."""
    if config.attention_name in NO_MAP_ON_CPU:
        return 0
    target, heads, layers = length or config.task.seq_len, config.model.num_heads, config.model.num_layers
    if synthetic.kind_of(config.task) == "seq2seq":
        source = config.task.source_len
        return batch * heads * layers * (source**2 + target**2 + target * source)
    if getattr(config.model.attention, "form", None) == "blockwise":  # the blocks on or below the diagonal
        blocks = math.ceil(target / config.model.attention.block_size)
        return batch * heads * layers * target**2 * (blocks + 1) // (2 * blocks)
    return batch * heads * layers * target**2


@functools.lru_cache(maxsize=1024)
def weights_bytes(config: RunConfig) -> int:
    """The bytes of the weights a finished run keeps (:mod:`experiments.weights`): every tensor of the model's
    state, tied ones once per name, counted on a model built without memory (the safetensors header aside)."""
    from experiments.train import build_model

    with torch.device("meta"):
        model = build_model(config.task, config.model)
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def step_flops(config: RunConfig) -> float:
    """A training step: forward, and a backward of twice that."""
    return 3 * forward_flops(config, config.train.batch_size)


def evaluations(config: RunConfig) -> list[tuple[int, int]]:
    """``(count, length)`` of the test-set forward passes of a run that trains all its steps."""
    train = config.train
    during = math.ceil(train.steps / train.eval_every)  # at each multiple of eval_every, and at the last step
    return [(during + 1, config.task.seq_len)] + [(1, at_length(config.task, n).seq_len) for n in train.test_lengths]


@dataclasses.dataclass(frozen=True)
class RunEstimate:
    config: RunConfig
    steps: int
    step_flops: float
    train_flops: float
    eval_flops: float
    compute_seconds: float  # FLOPs over the throughput
    overhead_seconds: float  # the per-step (and per evaluation chunk) fixed cost
    map_seconds: float = 0.0  # element-wise passes over materialised attention weights (CPU)

    @property
    def seconds(self) -> float:
        return self.compute_seconds + self.overhead_seconds + self.map_seconds


def estimate_run(config: RunConfig, device: Device, flops_per_second: float | None = None) -> RunEstimate:
    rate = flops_per_second or device.flops_per_second
    per_step = step_flops(config)
    chunks = math.ceil(config.task.num_test_examples / EVAL_BATCH)
    passes = evaluations(config)
    eval_flops = sum(count * forward_flops(config, config.task.num_test_examples, length) for count, length in passes)
    steps = config.train.steps
    overhead = device.step_overhead_s * (steps + EVAL_OVERHEAD_FRACTION * chunks * sum(c for c, _ in passes))
    weights = steps * map_weights(config, config.train.batch_size) + EVAL_OVERHEAD_FRACTION * sum(
        count * map_weights(config, config.task.num_test_examples, length) for count, length in passes)
    return RunEstimate(config, steps, per_step, steps * per_step, eval_flops,
                       (steps * per_step + eval_flops) / rate, overhead, weights * device.map_seconds_per_weight)


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of jobs handed, longest first, to whichever of ``workers`` is free first."""
    free = [0.0] * max(1, workers)
    for job in sorted(seconds, reverse=True):
        free[free.index(min(free))] += job
    return max(free)


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    name: str
    runs: list[RunEstimate]
    wall_seconds: float
    largest: RunEstimate
    measured_step_s: float | None = None  # --measure: the largest config's measured step time
    note: str = ""
    steps: int = dataclasses.field(init=False)  # totals over the runs
    train_flops: float = dataclasses.field(init=False)
    eval_flops: float = dataclasses.field(init=False)
    compute_seconds: float = dataclasses.field(init=False)

    def __post_init__(self):
        for total in ("steps", "train_flops", "eval_flops", "compute_seconds"):
            object.__setattr__(self, total, sum(getattr(r, total) for r in self.runs))


def plan_sweep(name: str, configs: Sequence[RunConfig], device: Device, workers: int,
               measured_step_s: float | None = None, note: str = "") -> SweepPlan:
    """The sweep's estimate; with ``measured_step_s`` (the largest config's step), the throughput that implies."""
    if not configs:
        raise ConfigError(f"sweep {name!r} has no runs")
    largest_config = max(configs, key=step_flops)
    rate = None
    if measured_step_s is not None:  # keep the overhead and the maps' cost, take the rest as compute (at least
        # a tenth of it)
        fixed = device.step_overhead_s + device.map_seconds_per_weight * map_weights(
            largest_config, largest_config.train.batch_size)
        compute = max(measured_step_s - fixed, 0.1 * measured_step_s)
        rate = step_flops(largest_config) / compute
    runs = [estimate_run(c, device, rate) for c in configs]
    wall = makespan([r.seconds for r in runs], workers)
    if device.kind == "cuda":  # the workers share one GPU: its compute does not overlap
        wall = max(wall, sum(r.compute_seconds for r in runs))
    largest = next(r for r in runs if r.config is largest_config)
    return SweepPlan(name, runs, wall, largest, measured_step_s, note)


# --- --measure --------------------------------------------------------------------------------------------------


def measure_step(config: RunConfig, device: Device, steps: int = MEASURE_STEPS) -> float:
    """Median seconds of a training step of ``config`` on this machine (as experiments.train runs one)."""
    from experiments.train import batch_losses, build_model, gradient_norm, make_optimizer

    where = torch.device(device.kind)
    autocast = where.type == "cuda"
    torch.manual_seed(0)
    model = build_model(config.task, config.model).to(where)
    optimizer = make_optimizer(model, config.train)
    stream = torch.Generator(device=where).manual_seed(0)

    def step() -> None:
        batch = synthetic.generate(config.task, config.train.batch_size, stream)
        _, objective = batch_losses(model, batch, autocast=autocast)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        gradient_norm(model, config.train.grad_clip)
        optimizer.step()
        if autocast:
            torch.cuda.synchronize()

    step()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def plan_measured(name: str, configs: Sequence[RunConfig], device: Device, workers: int) -> SweepPlan:
    modelled = plan_sweep(name, configs, device, workers)
    largest = modelled.largest
    if device.kind == "cuda" and not torch.cuda.is_available():
        return dataclasses.replace(modelled, note="not measured: no CUDA here")
    if largest.seconds / largest.steps > MEASURE_MAX_STEP_S:
        return dataclasses.replace(modelled, note=f"not measured: over {MEASURE_MAX_STEP_S:g} s a step")
    return plan_sweep(name, configs, device, workers, measured_step_s=measure_step(largest.config, device))


# --- the table --------------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{seconds / 86400:.1f} days"


def describe_config(config: RunConfig) -> str:
    model = config.model
    return (f"{config.attention_name} T{config.task.seq_len} d{model.d_model} L{model.num_layers} "
            f"mlp{model.mlp_ratio if model.mlp else 0} B{config.train.batch_size}")


def table(plans: Sequence[SweepPlan], device: Device, workers: int, profile: str) -> str:
    header = (f"{'sweep':<15} {'runs':>5} {'steps (max)':>12} {'train FLOP':>10} {'eval FLOP':>9}  "
              f"{'largest config':<34} {'GFLOP/step':>10} {'weights':>9} {'est. wall':>12}")
    lines = [f"plan: profile {profile}, {device.name} ({device.kind}), {workers} worker(s); nothing is run", "",
             header, "-" * len(header)]
    for p in plans:
        measured = f"  measured {p.measured_step_s * 1e3:.1f} ms/step" if p.measured_step_s is not None else ""
        lines.append(f"{p.name:<15} {len(p.runs):>5} {p.steps:>12,} {p.train_flops:>10.2e} {p.eval_flops:>9.2e}  "
                     f"{describe_config(p.largest.config):<34} {p.largest.step_flops / 1e9:>10.2f} "
                     f"{megabytes(kept(p)):>9} {duration(p.wall_seconds):>12}{measured}"
                     f"{'  ' + p.note if p.note else ''}")
    total = sum(p.wall_seconds for p in plans)
    lines += ["-" * len(header),
              f"{'total':<15} {sum(len(p.runs) for p in plans):>5} {sum(p.steps for p in plans):>12,} "
              f"{sum(p.train_flops for p in plans):>10.2e} {sum(p.eval_flops for p in plans):>9.2e}  "
              f"{'':<34} {'':>10} {megabytes(sum(kept(p) for p in plans)):>9} {duration(total):>12}", ""]
    lines += assumptions(device, workers)
    return "\n".join(lines)


def kept(plan: SweepPlan) -> int:
    """The bytes of weights the sweep's runs keep beside their results."""
    return sum(weights_bytes(r.config) for r in plan.runs)


def megabytes(count: int) -> str:
    return f"{count / 2**20:.1f} MB"


def assumptions(device: Device, workers: int) -> list[str]:
    share = (f"runs handed to {workers} worker(s) longest first, sharing one GPU: a sweep takes at least the sum "
             "of its compute time" if device.kind == "cuda"
             else f"one core per worker; runs handed to {workers} worker(s) longest first")
    return [
        "assumptions (constants in experiments/plan.py):",
        "- steps are an upper bound: runs with train.target_accuracy > 0 stop early once they reach it",
        "- FLOPs: 6 x matmul parameters x tokens, plus 12 B T^2 d per layer (QK^T and PV: forward 4 B T^2 d,",
        "  backward twice that; the whole T x T, the causal half not taken off); evaluation: forward passes on",
        "  the test set at every eval_every, at the end and at each test length",
        f"- step time = {device.step_overhead_s * 1e3:g} ms fixed (Python, kernel launches) + FLOPs / "
        f"({device.peak_tflops:g} TFLOP/s peak [{device.source}]",
        f"  x {device.efficiency:.0%} efficiency = {device.flops_per_second / 1e12:.3g} TFLOP/s"
        + (" per worker)" if device.kind == "cpu" else ")"),
        *([f"- plus {device.map_seconds_per_weight * 1e9:g} ns per attention weight a step materialises (B H T^2 "
           f"per layer; all variants but {', '.join(NO_MAP_ON_CPU)})"] if device.map_seconds_per_weight else []),
        f"- {share};",
        "  sweeps one after another",
        "- not counted: building test sets, checkpoints at each evaluation, the final analyses, process start-up",
        "- weights: what the runs keep beside their results (every tensor of the model's state in fp32, tied",
        "  ones once per name; safetensors headers aside)",
    ]


# --- the command ------------------------------------------------------------------------------------------------


def default_sweeps() -> list[str]:
    return [name for name in sweeps.names() if name not in NOT_IN_ALL]


def plans_for(names: Sequence[str], profile: str, device: Device, workers: int,
              measure: bool = False) -> list[SweepPlan]:
    """One plan per sweep; ConfigError (naming the valid choices) for an unknown sweep or profile."""
    profiles = {name: list(sweeps.load(name).PROFILES) for name in names}  # unknown sweep: its error first
    valid = list(dict.fromkeys(p for listed in profiles.values() for p in listed))
    if all(profile not in listed for listed in profiles.values()):
        raise ConfigError(f"unknown profile {profile!r}; valid profiles are {valid}")
    plan = plan_measured if measure else plan_sweep
    return [plan(name, sweeps.configs(name, profile), device, workers) for name in names]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m experiments.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick",
                        help="the sweeps' size (smoke, quick, deep, full; default quick)")
    parser.add_argument("--sweeps", nargs="+", default=None, metavar="NAME",
                        help=f"sweeps to plan (default: every sweep but {', '.join(NOT_IN_ALL)})")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="plan for this device (auto: CUDA if --device-name is given or CUDA is here)")
    parser.add_argument("--device-name", default=None,
                        help="the GPU to plan for, as torch.cuda.get_device_name() says it, e.g. "
                             "'NVIDIA H100 80GB HBM3' (looked up in a table of bf16 peaks)")
    parser.add_argument("--tflops", type=positive_float, default=None,
                        help="the device's peak TFLOP/s in place of the table's (bf16 dense on CUDA, one "
                             "thread's fp32 on CPU); the efficiency still applies")
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="runs at once, as the sweep runner's --workers (default 2, or 1 on one core)")
    parser.add_argument("--measure", action="store_true",
                        help="time a few training steps of each sweep's largest config here and use that "
                             "throughput for the sweep (writes nothing)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        device = make_device(args.device, args.device_name, args.tflops)
        if args.measure and device.kind == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--measure times steps on this machine, which has no CUDA; plan for cpu or drop "
                              "--measure")
        plans = plans_for(args.sweeps or default_sweeps(), args.profile, device, args.workers, args.measure)
    except ConfigError as error:
        parser.error(str(error))
    print(table(plans, device, args.workers, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
