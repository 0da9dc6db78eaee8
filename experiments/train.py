"""Training one model on one synthetic task.

AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101) with linear warm-up and
cosine decay; a fresh batch is generated on the training device every step
from a seeded generator, so no data set is stored and none is reused; the
fixed test set comes from the task's own seed. Accuracy is measured only at
labelled (queried) positions. CUDA is used when present, with bf16 autocast;
the CPU path runs in fp32. A non-finite training loss ends the run with
status ``diverged`` and the first bad step: that is a result, not a crash.
Each result also counts the training steps whose loss jumped well above its
best so far (``loss_spikes``), the sign of instability short of divergence.

A training step does not wait for the device: per-step losses stay on it
until the next evaluation, batches are generated where the model is, and
``compile`` puts the forward under ``torch.compile`` (``reduce-overhead``
adds CUDA graphs on CUDA).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import synthetic
from experiments import attention_stats, metrics
from experiments.checkpoint import TrainingObjects, TrainingState, resume_or_start, save
from experiments.config import ConfigError, check_choices, param, require, stable_hash
from experiments.model import EncoderDecoder, ModelConfig, Transformer

DEVICES = ("auto", "cpu", "cuda")
PROBE_MAP_MAX_LEN = 64  # a result keeps its first test example's attention maps up to this length (a gallery)
MAX_LR = 10.0  # past this AdamW's step overflows float32 on the first update
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
SCHEDULES = ("cosine", "noam")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = param(2000, "maximum optimiser steps")
    batch_size: int = param(64, "examples per step")
    lr: float = param(3e-3, "peak learning rate")
    warmup_steps: int = param(100, "linear warm-up steps")
    min_lr_ratio: float = param(0.1, "final learning rate as a fraction of lr (cosine decay)")
    weight_decay: float = param(0.1, "AdamW weight decay on matrices (not norms or biases)")
    grad_clip: float = param(1.0, "gradient-norm clip; 0 disables")
    eval_every: int = param(100, "steps between test-set evaluations")
    target_accuracy: float = param(0.99, "stop early once test accuracy reaches this; 0 disables early stop")
    seed: int = param(0, "seed of the initialisation and the training stream")
    device: str = param("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES)
    compile: str = param("none", "torch.compile the training forward: none, default, reduce-overhead (CUDA "
                         "graphs on CUDA) or max-autotune", choices=COMPILE_MODES)
    test_lengths: tuple[int, ...] = param((), "after training, also test at these sequence lengths (the task's "
                                          "seq_len replaced; length generalisation)", added=True)
    schedule: str = param("cosine", "after the linear warm-up: cosine (to min_lr_ratio x lr) or noam (lr times "
                          "sqrt(warmup_steps / step): Vaswani et al. 2017, the ReLA authors' schedule)",
                          choices=SCHEDULES, added=True)
    plateau_evals: int = param(0, "stop once the best test accuracy has not risen by more than plateau_delta over "
                               "this many evaluations, after it cleared the learned threshold, at an evaluation "
                               "within 2 x plateau_delta of the best (status plateaued; experiments.train.plateaued); "
                               "steps is then only a safety bound; 0 disables", added=True)
    plateau_delta: float = param(0.005, "the rise in best test accuracy that counts as still learning (plateau_evals)",
                                 added=True)

    def __post_init__(self):
        check_choices(self)
        require(isinstance(self.test_lengths, (tuple, list)) and len(self.test_lengths) <= 16
                and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 100_000
                        for n in self.test_lengths),
                f"train.test_lengths must be a list of at most 16 lengths in [1, 100000], got {self.test_lengths!r}")
        object.__setattr__(self, "test_lengths", tuple(self.test_lengths))  # JSON gives a list
        require(self.steps >= 1, f"steps must be positive, got {self.steps}")
        require(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}")
        require(math.isfinite(self.lr) and 0 < self.lr <= MAX_LR,
                f"lr must be in (0, {MAX_LR:g}], got {self.lr}")
        require(0 <= self.warmup_steps <= self.steps,
                f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps} (fewer steps need a shorter "
                "warm-up: --warmup-steps or train.warmup_steps=)")
        require(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        require(self.weight_decay >= 0, f"weight_decay must be non-negative, got {self.weight_decay}")
        require(self.grad_clip >= 0, f"grad_clip must be non-negative, got {self.grad_clip}")
        require(self.eval_every >= 1, f"eval_every must be positive, got {self.eval_every}")
        require(0 <= self.target_accuracy <= 1, f"target_accuracy must be in [0, 1], got {self.target_accuracy}")
        require(self.plateau_evals >= 0, f"plateau_evals must be non-negative, got {self.plateau_evals}")
        require(0 <= self.plateau_delta < 1, f"plateau_delta must be in [0, 1), got {self.plateau_delta}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but CUDA is not available; use auto or cpu")
    return torch.device(name)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of ``lr`` at ``step``: linear warm-up, then cosine to ``min_lr_ratio`` or Noam's inverse
    square root (1 at the end of the warm-up, in both)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "noam":
        return math.sqrt(max(1, config.warmup_steps) / (step + 1))
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def data_seed(seed: int) -> int:
    """Seed of the training stream, kept apart from the initialisation's seed."""
    return int(stable_hash(["train-data", seed])[:15], 16)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98))


def build_model(task: Any, model_config: ModelConfig) -> torch.nn.Module:
    """A decoder-only Transformer for ``lm`` tasks, an EncoderDecoder for ``seq2seq`` tasks."""
    if synthetic.kind_of(task) == "seq2seq":
        max_len = max(task.seq_len, task.source_len)
        return EncoderDecoder(model_config, vocab_size=task.vocab_size, max_len=max_len)
    return Transformer(model_config, vocab_size=task.vocab_size, max_len=task.seq_len)


def at_length(task: Any, length: int) -> Any:
    """The task with its sequence length replaced (validated as any config is)."""
    if synthetic.kind_of(task) != "lm" or "seq_len" not in {f.name for f in dataclasses.fields(task)}:
        raise ConfigError(f"train.test_lengths needs a decoder-only task with a seq_len of its own; "
                          f"{synthetic.name_of(task)} has none (its length follows from other fields)")
    return dataclasses.replace(task, seq_len=length)


def logits_and_labels(model: torch.nn.Module, batch: tuple[torch.Tensor, ...],
                      forward: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward`` (default ``model``) may be a compiled ``model``."""
    arguments, labels = model.split_batch(batch)
    return (model if forward is None else forward)(*arguments), labels


def batch_losses(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], *, autocast: bool,
           forward: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch's task loss, and the loss plus the regularisers the variant reports (if any)."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        logits, labels = logits_and_labels(model, batch, forward)
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=synthetic.IGNORE_INDEX)
    return loss, loss + sum(model.aux_losses().values())


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Any, test: tuple[torch.Tensor, ...], *, autocast: bool,
             batch_size: int = 250, detailed: bool = False) -> dict[str, Any]:
    """Test loss, token accuracy and exact match; with ``detailed``, accuracy by slice and (seq2seq) AER."""
    model.eval()
    correct, asked, loss_sum = [], [], 0.0
    for start in range(0, test[0].shape[0], batch_size):
        batch = tuple(t[start:start + batch_size] for t in test)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits, labels = logits_and_labels(model, batch)
        loss_sum += F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(),
                                    ignore_index=synthetic.IGNORE_INDEX, reduction="sum").item()
        c, a = metrics.per_example(logits, labels)
        correct.append(c)
        asked.append(a)
    correct, asked = torch.cat(correct), torch.cat(asked)
    counted = max(int(asked.sum()), 1)
    result: dict[str, Any] = {
        "test_accuracy": int(correct.sum()) / counted,
        "test_loss": loss_sum / counted,
        "test_exact_match": float((correct == asked).double().mean()),
    }
    if detailed:
        result["slices"] = {name: metrics.by_slice(correct, asked, values)
                            for name, values in synthetic.slices(task, test).items()}
        probe = tuple(t[:PROBE_EXAMPLES] for t in test)  # a fixed slice of the test set for the analyses below
        if synthetic.kind_of(task) == "seq2seq":  # the task gives gold alignment links: score the maps on them
            aligned = tuple(t[:batch_size] for t in test)
            result["aer"] = metrics.alignment_error(model.attention_maps(aligned)[0], aligned[3],
                                                    rows=metrics.target_words(aligned[2]),
                                                    possible=synthetic.possible_links(task, aligned))
        maps, causal = model.attention_maps(probe)
        result["attention_stats"] = metrics.summarise_attention(maps, causal=causal)
        if synthetic.kind_of(task) == "lm":  # R5 on the rows the task asks about, the same for every variant
            result["head_diversity_at_queries"] = metrics.head_diversity_at(maps, probe[1] != synthetic.IGNORE_INDEX)
        active = synthetic.active_rows(task, probe) if synthetic.kind_of(task) == "lm" else None
        if active is not None:  # the sink probe at the rows where the task needs no attention
            result["sink"] = metrics.sink_statistics(maps, model.value_norms(probe), active)
        if synthetic.kind_of(task) == "lm" and probe[0].shape[1] <= PROBE_MAP_MAX_LEN:
            result["probe_maps"] = metrics.first_example_maps(maps, probe[0])
        result["ffn_top_mass"] = metrics.ffn_top_mass(model, probe)
        result["ffn_top_mass_at_queries"] = metrics.ffn_top_mass(model, probe, at_labels=True)
        result["decode_state_bytes"] = metrics.decode_state_bytes(model, test[0].shape[1])
    model.train()
    return result


SPIKE_FACTOR, SPIKE_MARGIN = 2.0, 0.5  # a spike: loss > 2x the best interval mean so far and > 0.5 nats above it


def loss_spikes(losses: torch.Tensor, curve: list[dict[str, float]]) -> int:
    """Steps of this evaluation interval whose loss jumps above the lowest earlier interval mean.

    A step counts when its loss is both :data:`SPIKE_FACTOR` times that mean
    and :data:`SPIKE_MARGIN` nats above it (the margin keeps noise around a
    near-zero loss from counting). The first interval counts none.
    """
    if not curve:
        return 0
    best = min(point["train_loss"] for point in curve)
    return int(((losses > SPIKE_FACTOR * best) & (losses > best + SPIKE_MARGIN)).sum())


PROBE_EXAMPLES = 64  # the fixed slice of the test set the mechanism probes and the final analyses read


def output_ratios(model: torch.nn.Module, test: tuple[torch.Tensor, ...], *, autocast: bool) -> list[float]:
    """Per attention layer, RMS(attention output) / RMS(residual stream) on the probe slice: whether the
    attention can move the stream at all (the probe an unnormalised variant's stability claim rests on)."""
    model.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        ratios = model.output_ratios(tuple(t[:PROBE_EXAMPLES] for t in test))
    model.train()
    return ratios


def attention_at_init(model: torch.nn.Module, test: tuple[torch.Tensor, ...], *,
                      autocast: bool) -> tuple[float, float]:
    """On the probe slice: the largest per-head rate of all-zero attention rows, and the sparsity rate's mean
    over layers and heads (as the trained model's ``attention_stats`` reports it).

    ReLA's R6 and R1 are measured against these at initialisation: a causal
    ReLU head already has null rows there (row i is all zero with probability
    about 2^-(i+1)), and about half its weights are zero.
    """
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        maps, causal = model.attention_maps(tuple(t[:PROBE_EXAMPLES] for t in test))
    model.train()
    null = max(float(attention_stats.null_rate(w.float(), causal=causal).max()) for w in maps)
    sparsity = [float(v) for w in maps for v in attention_stats.sparsity_rate(w.float(), causal=causal)]
    return null, sum(sparsity) / len(sparsity)


def plateaued(curve: list[dict[str, Any]], evals: int, delta: float, threshold: float) -> bool:
    """Whether the best test accuracy has stopped rising: the last ``evals`` evaluations raised it by at most
    ``delta`` over the best before them, that best cleared ``threshold`` (the task's learned threshold), and
    the latest evaluation is within ``2 * delta`` of the best.

    The threshold keeps a run on the flat stretch before learning starts
    (recall's plateau at the guess, say) from reading as finished; the last
    condition makes a run stop on its plateau rather than in a dip of a noisy
    curve, since the model it ends with is the one measured.
    """
    if evals < 1 or len(curve) <= evals:
        return False
    accuracies = [point["test_accuracy"] for point in curve]
    before, best = max(accuracies[:-evals]), max(accuracies)
    return before >= threshold and best <= before + delta and accuracies[-1] >= best - 2 * delta


def stop_status(config: TrainConfig, curve: list[dict[str, Any]], threshold: float) -> str | None:
    """``reached_target`` or ``plateaued`` when the run should stop after its latest evaluation, else None."""
    if config.target_accuracy > 0 and curve[-1]["test_accuracy"] >= config.target_accuracy:
        return "reached_target"
    if plateaued(curve, config.plateau_evals, config.plateau_delta, threshold):
        return "plateaued"
    return None


def gradient_norm(model: torch.nn.Module, clip: float) -> torch.Tensor:
    """The gradient's total 2-norm before clipping (which, when on, scales the gradient by it), on the device."""
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    return torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@functools.cache
def cpu_name() -> str:
    """``CPU (<model>)``: the processor a CPU run used, so that ledgers can tell machines apart (floats take
    other paths on another CPU model)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"CPU ({model or platform.processor() or platform.machine()})"


def start(task: Any, model_config: ModelConfig, config: TrainConfig, device: torch.device) -> TrainingObjects:
    """A fresh run's model, optimiser, schedule and data stream, from its seed."""
    torch.manual_seed(config.seed)
    model = build_model(task, model_config).to(device)
    optimizer = make_optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    stream = torch.Generator(device=device).manual_seed(data_seed(config.seed))
    return TrainingObjects(model, optimizer, schedule, stream)


def record_interval(both: torch.Tensor, state: TrainingState, model: torch.nn.Module, task: Any,
                    test: tuple[torch.Tensor, ...], *, autocast: bool, lr: float) -> int | None:
    """Close an evaluation interval: add its point to ``state.curve``, or return the step the run diverged at.

    ``both`` is ``(steps, 3)``: each step's task loss, task + auxiliary losses and gradient norm; ``lr`` is
    the learning rate the schedule has reached at this step.
    """
    losses = both[:, 0]
    finite = torch.isfinite(both[:, :2]).all(dim=1)
    if not bool(finite.all()):
        first_bad = int((~finite).nonzero()[0, 0])
        return state.step - len(losses) + first_bad + 1
    state.loss_spikes += loss_spikes(losses, state.curve)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return state.step  # finite losses, but the weights overflowed
    scores = evaluate(model, task, test, autocast=autocast)
    if not math.isfinite(scores["test_loss"]):
        return state.step  # the test loss overflowed at this evaluation
    point = {"step": state.step, "train_loss": float(losses.mean()), **scores, "lr": lr,
             "grad_norm_max": _finite(float(both[:, 2].max())),
             "output_ratio": output_ratios(model, test, autocast=autocast)}
    if not torch.equal(both[:, 0], both[:, 1]):
        point["train_objective"] = float(both[:, 1].mean())
    state.curve.append(point)
    return None


def final_metrics(status: str, curve: list[dict[str, Any]], model: torch.nn.Module, task: Any,
                  test: tuple[torch.Tensor, ...], config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The detailed evaluation after training; a diverged run keeps its last evaluation, all finite."""
    if not curve:
        return {}
    if status == "diverged":
        return {"last_finite": curve[-1]}
    autocast = device.type == "cuda"
    final = {"train_loss": curve[-1]["train_loss"], **evaluate(model, task, test, autocast=autocast, detailed=True)}
    if config.test_lengths:
        final["length_accuracy"] = {str(n): evaluate(model, at_length(task, n), synthetic.test_set(
            at_length(task, n), device), autocast=autocast)["test_accuracy"] for n in config.test_lengths}
    return final


def _result(status: str, diverged_at: int | None, state: TrainingState, final: dict[str, Any],
            model: torch.nn.Module, test: tuple[torch.Tensor, ...], device: torch.device,
            train_seconds: float) -> dict[str, Any]:
    return {
        "status": status,
        "diverged_at_step": diverged_at,
        "loss_spikes": state.loss_spikes,
        "steps_run": state.step,
        "final": final,
        "curve": state.curve,
        "train_seconds": train_seconds,
        "num_parameters": model.num_parameters(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "test_set_sha256": synthetic.tensor_hash(*test),
        "probes": {"output_ratio_at_init": state.output_ratio_at_init, "null_rate_at_init": state.null_rate_at_init,
                   "sparsity_at_init": state.sparsity_at_init,
                   "grad_norm_max": max((p["grad_norm_max"] for p in state.curve
                                         if p.get("grad_norm_max") is not None), default=None)},
    }


def show(point: dict[str, Any], bar: Any, log: Callable[[dict], None] | None) -> None:
    """An evaluation's point on the progress bar and, with ``log``, to the run's tracker."""
    bar.set_postfix(loss=f"{point['train_loss']:.3f}", acc=f"{point['test_accuracy']:.3f}")
    if log is not None:
        log(point)


def train(task: Any, model_config: ModelConfig, config: TrainConfig, *, progress: bool = True,
          checkpoint: str | os.PathLike | None = None, log: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train and evaluate; returns metrics, the curve and the status; ``log(point)`` sees each evaluation's
    point of the curve as it is made (live tracking, :mod:`experiments.tracking`).

    ``status`` is ``finished`` (all steps run), ``reached_target`` (stopped
    early at ``target_accuracy``), ``plateaued`` (stopped once test accuracy
    stopped rising: :func:`plateaued`) or ``diverged`` (``diverged_at_step``
    names the first step whose loss was NaN or infinite).

    With ``checkpoint``, the run is saved there at every evaluation and a run
    that finds the file resumes from it (:mod:`experiments.checkpoint`).
    """
    device = resolve_device(config.device)
    autocast = device.type == "cuda"
    path = Path(checkpoint) if checkpoint is not None else None
    objects, state = resume_or_start(path, lambda: start(task, model_config, config, device), device,
                                     steps=config.steps, lr=config.lr,
                                     lr_at=lambda step: config.lr * lr_factor(step, config))
    model, optimizer, schedule, stream = objects
    forward = model if config.compile == "none" else torch.compile(model, mode=config.compile)
    test, threshold = synthetic.test_set(task, device), synthetic.learned_threshold(task)
    if state.step == 0:
        state.output_ratio_at_init = output_ratios(model, test, autocast=autocast)
        state.null_rate_at_init, state.sparsity_at_init = attention_at_init(model, test, autocast=autocast)

    status, diverged_at = "finished", None
    recent: list[torch.Tensor] = []  # per-step losses since the last evaluation, kept on device
    started = time.perf_counter()
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, leave=False, dynamic_ncols=True)
    for step in range(state.step, config.steps):
        batch = synthetic.generate(task, config.batch_size, stream)
        loss, objective = batch_losses(model, batch, autocast=autocast, forward=forward)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        grad_norm = gradient_norm(model, config.grad_clip)
        optimizer.step()
        schedule.step()
        recent.append(torch.stack([loss.detach(), objective.detach(), grad_norm.detach().float()]))
        state.step = step + 1
        bar.update(1)
        if state.step % config.eval_every != 0 and state.step != config.steps:
            continue
        diverged_at = record_interval(torch.stack(recent), state, model, task, test, autocast=autocast,
                                      lr=optimizer.param_groups[0]["lr"])
        recent = []
        if diverged_at is not None:
            status = "diverged"
            break
        if path is not None:
            save(path, objects, state, train_seconds=state.earlier_seconds + time.perf_counter() - started)
        show(state.curve[-1], bar, log)
        status = stop_status(config, state.curve, threshold) or status
        if status != "finished":
            break
    bar.close()

    final = final_metrics(status, state.curve, model, task, test, config, device)
    return _result(status, diverged_at, state, final, model, test, device,
                   train_seconds=state.earlier_seconds + time.perf_counter() - started)
