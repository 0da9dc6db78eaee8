"""What a run is and how it executes: a (task, model, training) config, checked before it starts,
trained once, recorded as one JSON result in the cache (:mod:`experiments.cache`).

The config's key is a hash of the full config with its device resolved to
``cpu`` or ``cuda`` (a CUDA bf16 run and a CPU fp32 run of one config are
different measurements) and :data:`SCHEMA_VERSION`, bumped whenever a change
to the code changes what a config means. A result is written atomically once
a run ends, so an interrupted sweep never leaves a partial file and a rerun
skips every finished run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

import synthetic
from experiments import attention, cache, tracking, weights
from experiments.config import ConfigError, check_values, from_dict, stable_hash, to_dict
from experiments.atomic import atomic_write_text
from experiments.cache import (Heartbeat, Locked, LockTimeout, acquire, clear, failure_path, git_revision,
                               holder_line, load_result, lock_path, result_path, run_files, versions)
from experiments.model import ModelConfig
from experiments.train import TrainConfig, at_length, resolve_device, train

SCHEMA_VERSION = 2
REPO_ROOT = Path(__file__).resolve().parent.parent


def resolved(config: dict[str, Any], device_type: str) -> dict[str, Any]:
    """A config dict with ``train.device`` ``auto`` replaced by ``device_type``, where it trains."""
    train = config.get("train")
    if not isinstance(train, dict) or train.get("device", "auto") != "auto":
        return config
    return {**config, "train": {**train, "device": device_type}}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    task: Any  # a registered task's config
    model: ModelConfig
    train: TrainConfig

    def __post_init__(self):
        synthetic.name_of(self.task)  # raises ConfigError for anything else
        for where, part in (("task", self.task), ("model", self.model), ("model.attention", self.model.attention),
                            ("train", self.train)):
            check_values(part, where)

    @property
    def task_name(self) -> str:
        return synthetic.name_of(self.task)

    @property
    def attention_name(self) -> str:
        return attention.name_of(self.model.attention)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": synthetic.config_to_dict(self.task),
            "model": self.model.to_dict(),
            "train": to_dict(self.train),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a JSON object, got {type(data).__name__}")
        for section in ("model", "train"):
            if not isinstance(data.get(section, {}), dict):
                raise ConfigError(f"{section} must be a JSON object, got {type(data[section]).__name__}")
        unknown = sorted(set(data) - {"task", "model", "train"})
        if unknown:
            raise ConfigError(f"RunConfig: unknown key(s) {unknown}; valid keys are ['task', 'model', 'train']")
        return cls(
            task=synthetic.config_from_dict(data["task"]),
            model=ModelConfig.from_dict(data.get("model", {})),
            train=from_dict(TrainConfig, data.get("train", {}), "train"),
        )

    def device_type(self) -> str:
        """``cuda`` or ``cpu``: where this config trains (``auto`` resolved on this machine)."""
        if self.train.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.train.device

    def on(self, device: str) -> "RunConfig":
        """This config pinned to ``device`` (``cpu`` or ``cuda``), e.g. for jobs that run on another machine."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, device=device))

    def identity(self) -> dict[str, Any]:
        """The config as its key hashes it: the device resolved, so ``auto`` on a GPU box and ``cuda`` are one
        run (:func:`resolved` does the same to a stored config)."""
        return resolved(self.to_dict(), self.device_type())

    def key(self) -> str:
        return stable_hash({"schema": SCHEMA_VERSION, "config": self.identity()})

    def same_run(self, stored: Any) -> bool:
        """Whether a config dict read from a result (its device as that run gave it) is this run."""
        return isinstance(stored, dict) and resolved(stored, self.device_type()) == json.loads(
            json.dumps(self.identity()))

    def run_id(self) -> str:
        """A readable slug: task, attention, the task's main knobs, width, seed, key prefix."""
        knobs = "-".join(
            f"{short}{getattr(self.task, field)}"
            for field, short in (("seq_len", "T"), ("num_kv_pairs", "N"), ("vocab_size", "V"))
            if hasattr(self.task, field)
        )
        return (f"{self.task_name}-{self.attention_name}-{knobs}-d{self.model.d_model}"
                f"-h{self.model.num_heads}-s{self.train.seed}-{self.key()[:8]}")


def learning(config: RunConfig, result: dict[str, Any]) -> dict[str, Any]:
    """The task's chance level and ceiling, the learned threshold (halfway from chance to the ceiling) and
    whether the run cleared it.

    A diverged run did not learn, whatever it reached before diverging.
    """
    threshold = synthetic.learned_threshold(config.task)
    accuracy = result.get("final", {}).get("test_accuracy")
    learned = result["status"] != "diverged" and accuracy is not None and accuracy >= threshold
    return {"chance": synthetic.chance(config.task), "ceiling": synthetic.ceiling(config.task),
            "learned_threshold": threshold, "learned": int(learned)}


EVAL_BATCH = 250  # evaluation runs in chunks of this many examples (experiments.train.evaluate)


def holds_matrix(attention_config: Any, device: str, queries: int, keys: int, head_dim: int) -> bool:
    """Whether this attention keeps a ``(B, H, Tq, Tk)`` tensor while it runs on ``device``.

    A config says so through ``holds_matrix(device=, queries=, keys=, head_dim=)`` (SDPA, the fused and
    blockwise kernels and the chunked linear forms hold none); a config that does not say is assumed to.
    """
    says = getattr(attention_config, "holds_matrix", None)
    return True if says is None else bool(says(device=device, queries=queries, keys=keys, head_dim=head_dim))


def estimated_bytes(config: RunConfig) -> dict[str, int]:
    """A rough upper estimate of a run's memory on its device: parameters with their gradients and AdamW
    moments, plus the larger of training's and evaluation's activations.

    Training keeps, for the backward, every layer's residual-width tensors,
    its MLP, the attention's ``(B, H, T, T)`` map with its backward where the
    attention holds one on this device (:func:`holds_matrix`), and the logits.
    Evaluation runs without gradients in chunks of :data:`EVAL_BATCH`: one
    layer's tensors are alive at a time, with at most one map, and the logits.
    Enough to refuse a config that cannot fit before anything is allocated,
    not to predict the peak.
    """
    task, model, train = config.task, config.model, config.train
    vocab, width, layers, ratio = task.vocab_size, model.d_model, model.num_layers, model.mlp_ratio
    length = max(task.seq_len, getattr(task, "source_len", 0))
    longest = max([length, *(at_length(task, n).seq_len for n in train.test_lengths)])  # evaluated at these too
    stacks = 2 if synthetic.kind_of(task) == "seq2seq" else 1  # an encoder and a decoder
    per_layer = (4 * stacks + 2 * ratio * stacks + 4 * (stacks - 1)) * width * width  # q,k,v,o; MLP; cross-attention
    parameters = 2 * vocab * width + 2 * length * width + layers * per_layer

    head_dim = width // model.num_heads
    features = model.attention.feature_dim(head_dim) if hasattr(model.attention, "feature_dim") else 0
    parameters += layers * features * head_dim  # at most a random-feature projection per layer (Performer's)

    def activations(batch: int, tokens: int, live_layers: int, copies: int) -> int:
        """Bytes (fp32) of ``live_layers`` layers' tensors and ``copies`` of each map and of the logits."""
        matrix = holds_matrix(model.attention, config.device_type(), tokens, tokens, head_dim)
        per_token = live_layers * stacks * (width * (12 + 3 * ratio) + copies * model.num_heads * (
            (tokens if matrix else 0) + 2 * features))  # the map; phi(q) and phi(k)
        return 4 * batch * tokens * (per_token + copies * vocab)

    def test_set(tokens: int) -> int:
        """Bytes of a test set on the device: int64 inputs and labels (and source), a seq2seq task's gold links."""
        source = getattr(task, "source_len", 0)
        return task.num_test_examples * (8 * (2 * tokens + source) + tokens * source)

    training = activations(train.batch_size, length, layers, 3)  # forward values, their gradients, the backward's
    evaluation = activations(min(task.num_test_examples, EVAL_BATCH), longest, 1, 2)  # no gradients: one layer
    data = test_set(length) + (test_set(longest) if longest > length else 0)  # the test set and one at a length
    return {"parameters": 16 * parameters, "activations": max(training, evaluation), "test_sets": data,
            "total": 16 * parameters + max(training, evaluation) + data}


def available_bytes(device: str) -> int:
    """Memory of the device a run trains on: the GPU's, or this machine's physical memory."""
    if device == "cuda":
        return torch.cuda.get_device_properties(0).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(config: RunConfig) -> None:
    """Refuse (ConfigError) a config whose estimated memory is over 90% of what its device has."""
    need, have = estimated_bytes(config), available_bytes(config.device_type())
    if need["total"] > 0.9 * have:
        gib = 2**30
        raise ConfigError(f"{config.run_id()} needs about {need['total'] / gib:.1f} GiB (parameters and optimiser "
                          f"{need['parameters'] / gib:.1f}, activations {need['activations'] / gib:.1f}, test sets "
                          f"{need['test_sets'] / gib:.1f}); this {config.device_type()} has {have / gib:.1f} GiB: use "
                          "a smaller width, batch, length, vocabulary, feature count or num_test_examples")


def check_compatible(config: RunConfig) -> None:
    """Refuse (ConfigError) options that would only fail once training starts, for the device the run uses.

    An attention config with such options defines ``check_run(positions=,
    device=, head_dim=)`` (the element-wise forms: fused needs CUDA and a head
    dim it has blocks for; the linear family: cosFormer's fixed length); the
    others have nothing to check.
    """
    lengths = [at_length(config.task, n).seq_len for n in config.train.test_lengths]  # each a valid task
    if lengths and config.model.positions == "learned" and max(lengths) > config.task.seq_len:
        raise ConfigError(f"train.test_lengths goes to {max(lengths)} tokens but model.positions=learned has no "
                          f"embedding past the training length {config.task.seq_len}; use model.positions=none")
    if config.model.bos and synthetic.kind_of(config.task) != "lm":
        raise ConfigError(f"model.bos adds a start vector to a decoder-only model; task "
                          f"{synthetic.name_of(config.task)!r} is seq2seq, and its decoder reads a BOS token already")
    check_run = getattr(config.model.attention, "check_run", None)
    if check_run is not None:
        check_run(positions=max(config.task.seq_len, getattr(config.task, "source_len", 0), *lengths),
                  device=torch.device(config.device_type()), head_dim=config.model.d_model // config.model.num_heads)


def run(config: RunConfig, *, root: str | os.PathLike | None = None, progress: bool = True,
        force: bool = False, wait: bool = True, poll_seconds: float = 0.5,
        lock_timeout: float | None = None, log: str = "none",
        sweep: str | None = None) -> tuple[dict[str, Any], bool]:
    """Run ``config`` unless its result is cached; returns ``(result, was_cached)``. A run trained here sends
    each evaluation to the tracker ``log`` names (:mod:`experiments.tracking`; ``sweep`` groups its runs).

    A lock file beside the result keeps concurrent runners (processes, or
    jobs on a shared file system) from doing one run twice: while another
    live process holds it, this call waits for that result (or raises
    :class:`Locked` when ``wait`` is False); a lock left by a killed process
    is taken over (same host: its pid is gone; another host: it stopped
    refreshing the lock for :data:`STALE_AFTER_SECONDS`). While waiting it
    says once a minute who holds the lock and for how long; after
    ``lock_timeout`` seconds of waiting it raises :class:`LockTimeout`.
    """
    resolve_device(config.train.device)  # a device this machine lacks is an error before anything is locked
    lock = lock_path(config, root)
    waiting_since = last_said = time.monotonic()
    while True:
        if not force:
            cached = load_result(config, root)
            if cached is not None:
                return cached, True
        if acquire(lock):
            break
        if not wait:
            raise Locked(config.run_id())
        now = time.monotonic()
        if lock_timeout is not None and now - waiting_since > lock_timeout:
            raise LockTimeout(f"{config.run_id()}: waited {now - waiting_since:.0f} s for {lock} ({holder_line(lock)}); "
                              "gave up (--lock-timeout)")
        if now - last_said >= cache.WAIT_REPORT_SECONDS:
            last_said = now
            print(f"waiting for {lock}: {holder_line(lock)}, for {now - waiting_since:.0f} s so far", file=sys.stderr)
        time.sleep(poll_seconds)
    heartbeat = Heartbeat(lock)
    heartbeat.start()
    try:
        remove_leftovers(config, root)
        if not force:  # finished by the previous holder between our check and the lock
            cached = load_result(config, root)
            if cached is not None:
                return cached, True
        result = _train_and_record(config, root, progress, fresh=force, log=log, sweep=sweep)
    finally:
        heartbeat.stopped.set()
        lock.unlink(missing_ok=True)
    return result, False


LEFTOVER_SECONDS = 60.0  # a lock's private file older than this is a killed acquirer's


def remove_leftovers(config: RunConfig, root) -> list[Path]:
    """Delete the half-written files of this run that a killed process left (an atomic write's temporary, a
    lock's private file), and return them. Called holding the run's lock: nobody else writes this run's
    result or checkpoint, so any of their temporaries is dead; a lock's private file is dead once it is
    older than :data:`LEFTOVER_SECONDS` (an acquirer links it within microseconds)."""
    _, result, lock, _ = run_files(config, root)
    dead = list(result.parent.glob(f".{result.stem}.*.tmp*"))  # result.stem: the key prefix of this run's files
    for path in result.parent.glob(f"{lock.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.lstat().st_mtime > LEFTOVER_SECONDS:
                dead.append(path)
    dead = [p for p in dead if p.is_symlink() or not p.is_dir()]  # a planted folder is not a leftover
    for path in dead:
        path.unlink(missing_ok=True)
    return dead


def finite_json(data: Any, path: str = "") -> tuple[Any, list[str]]:
    """``data`` with every non-finite float replaced by None, and the dotted names of those fields."""
    if isinstance(data, float) and not math.isfinite(data):
        return None, [path or "(value)"]
    if isinstance(data, dict):
        out, bad = {}, []
        for key, value in data.items():
            out[key], found = finite_json(value, f"{path}.{key}" if path else str(key))
            bad += found
        return out, bad
    if isinstance(data, (list, tuple)):
        out, bad = [], []
        for index, value in enumerate(data):
            item, found = finite_json(value, f"{path}[{index}]")
            out.append(item)
            bad += found
        return out, bad
    return data, []


def _train_and_record(config: RunConfig, root, progress: bool, fresh: bool = False, log: str = "none",
                      sweep: str | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    checkpoint = result_path(config, root).with_suffix(".ckpt")  # an interrupted run resumes from here
    if fresh:
        checkpoint.unlink(missing_ok=True)  # --force: never resume, whatever a checkpoint holds
    tracker = tracking.Tracker(log, root=cache.results_dir(root), run_id=config.run_id(), sweep=sweep,
                               config=config.to_dict())
    try:
        outcome = train(config.task, config.model, config.train, progress=progress, checkpoint=checkpoint,
                        log=tracker if log != "none" else None)
    finally:
        tracker.close()
    if checkpoint.exists():  # the run's last state: its weights are kept beside the result
        kept = checkpoint.with_suffix(weights.SUFFIX)
        clear(kept)  # an earlier run's file or a link is replaced; a planted folder is moved aside
        outcome["weights"] = weights.keep(checkpoint, kept)
    clear(failure_path(config, root))
    result = {
        "schema": SCHEMA_VERSION,
        "key": config.key(),
        "run_id": config.run_id(),
        "config": config.to_dict(),
        **outcome,
        "wall_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "git": git_revision(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
    }
    result, non_finite = finite_json(result)
    if non_finite:
        result["non_finite_fields"] = non_finite  # written as null; named here
    if result_path(config, root).is_dir():  # a planted folder: moved aside, so the trained result is kept
        clear(result_path(config, root))
    atomic_write_text(result_path(config, root), json.dumps(result, indent=1, allow_nan=False) + "\n")
    clear(checkpoint)
    return result


def describe(result: dict[str, Any], *, saved_at: str | None = None) -> str:
    """A few lines for the terminal, ``saved_at`` (the result's path) among them; the last is the test
    accuracy against the task's chance level, the comparison a run is judged by."""
    final = result.get("final", {})
    lines = [f"run      {result['run_id']}", f"status   {result['status']}"
             + (f" at step {result['diverged_at_step']}" if result.get("diverged_at_step") else "")]
    lines.append(f"steps    {result['steps_run']} of {result['config']['train']['steps']}")
    if "test_loss" in final:
        lines.append(f"loss     {final['test_loss']:.4f} (test)")
    lines.append(f"time     {result['wall_seconds']:.1f} s on {result['device_name']}")
    if saved_at is not None:
        lines.append(f"result   {saved_at}")
    try:
        gate = learning(RunConfig.from_dict(result["config"]), result)
    except (ConfigError, KeyError, TypeError):
        gate = None  # a result written by an older version of a config: nothing to compare with
    against = "" if gate is None else (f" (chance {gate['chance']:.4f}; learned at >= "
                                       f"{gate['learned_threshold']:.4f}: "
                                       + ("learned)" if gate["learned"] else "did not learn)"))
    if "test_accuracy" in final:
        lines.append(f"accuracy {final['test_accuracy']:.4f}{against}")
    elif "last_finite" in final:
        last = final["last_finite"]
        lines.append(f"accuracy {last['test_accuracy']:.4f} at step {last['step']}, the last finite evaluation"
                     f"{against}")
    return "\n".join(lines)
