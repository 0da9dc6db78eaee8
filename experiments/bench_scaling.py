"""Scaling benchmark: time and peak memory against length for every variant and form (a benchmark, not a test).

    python -m experiments.bench_scaling --out benchmarks/scaling_cpu.json      # what `make bench` runs

Kernels: causal self-attention forward+backward on ``(B, H, T, D)`` random
inputs for every registered variant in each of its forms (linear family:
parallel, chunked, recurrent; ReLU family and sigmoid: materialised,
blockwise, and fused on CUDA; the rest: their one form; softmax is PyTorch
SDPA), at lengths 256..8192 on CPU and 512..32768 on a GPU. Time is the
median of at least ``--repeats`` runs after a warm-up (see ``_timed``); peak memory is the most held
during forward+backward beyond the inputs: ``torch.cuda.max_memory_allocated``
on a GPU; on CPU the process's resident high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs``), measured in a last run after the timed
ones with glibc's mmap threshold fixed at 64 KiB and its free memory trimmed,
so that freed tensors return to the system (the timed runs keep glibc's
defaults, as training does). Each case runs in its
own subprocess, lengths ascending; a case stops growing once one run takes
longer than ``--max-seconds`` (or runs out of memory).

Training: tokens per second of a full optimiser step (a 2-layer model,
forward, loss, backward, AdamW) per variant in its default form.

Every number is also a ratio to softmax (SDPA) measured in the same run.
Writes JSON (device name, date, command, settings, rows, the scaling targets
of the forms evaluated), a Markdown table and a log-log plot beside it.

The speed figure of ``make all`` (claim R4) is this benchmark too, at short
lengths, each variant once at its default form, without the training
throughput or the log-log plot:

    python -m experiments.bench_scaling --out paper_figs/quick/speed.json --cases defaults --no-training \
        --no-plot --lengths 128 512 --only rela_g sparsemax entmax15
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from experiments import attention, cli
from experiments.atomic import atomic_write_text

CPU_LENGTHS = (256, 512, 1024, 2048, 4096, 8192)
GPU_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
BASELINE = "softmax (sdpa)"
MATERIALISED = "softmax (materialised)"  # the T x T softmax map formed and normalised: the papers' baseline
DECODE_LENGTH = 512  # keys in the cache when a decoding step is timed


def forms_of(name: str, device: str) -> list[str | None]:
    """The variant's forms on ``device``, from the registry; ``[None]`` for a variant with one way only."""
    return list(attention.get(name).forms_on(device)) or [None]


def cases(device: str, *, defaults: bool = False) -> list[dict[str, Any]]:
    """``{"label", "variant", "form"}`` for every variant in each of its forms on ``device``, or with
    ``defaults`` once at its default form (``form`` None, labelled by its name: what training runs)."""
    out = []
    for name in attention.names():
        for form in [None] if defaults else forms_of(name, device):
            label = BASELINE if name == "softmax" else name if form is None else f"{name} ({form})"
            out.append({"label": label, "variant": name, "form": form})
        if name == "softmax":
            out.append({"label": MATERIALISED, "variant": "softmax", "form": "materialised"})
    return out


# --- measuring, inside a worker process ----------------------------------------------------------------------


def _status(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def _freed_memory_returns_to_the_system() -> None:
    """glibc: serve every allocation over 64 KiB from its own mapping (unmapped when freed) and give back
    the heap's free pages, so the resident high-water mark counts what a block allocates."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD (also stops glibc from raising it on its own)
    libc.malloc_trim(0)


class PeakMemory:
    """Bytes held at the peak of a block beyond what was held when it started."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            _freed_memory_returns_to_the_system()
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
            # read the base from the same counter: VmRSS and VmHWM are updated at different moments, and a
            # base read from VmRSS can exceed the later VmHWM under load, which would give a negative peak
            self.base = _status("VmHWM")
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = max(0, _status("VmHWM") - self.base)


def attend_fn(case: dict[str, Any]):
    """``attend(q, k, v)`` of a case, causal, at the variant's defaults and the case's form (None: its own)."""
    if case["variant"] == "softmax" and case["form"] == "materialised":
        from experiments.attention.softmax import reference

        return lambda q, k, v: reference(q, k, v, causal=True)
    variant = attention.get(case["variant"])
    params = dataclasses.asdict(attention.make_config(case["variant"]))
    if case["form"] is not None:
        params["form"] = case["form"]
    kwargs = attention.accepted_params(variant.attend, params)
    return lambda q, k, v: variant.attend(q, k, v, causal=True, **kwargs)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


WARMUP_SECONDS, TIMED_SECONDS, MAX_RUNS = 0.2, 0.5, 50


def _timed(step, settings: dict[str, Any]) -> list[float]:
    """Seconds of repeated calls of ``step``, whose kernels are already compiled (:func:`measure_kernel` calls
    it once first). Warm-up: one call, then more until ``WARMUP_SECONDS`` have passed (a fresh process's first
    runs also pay for the pages its heap grows into). Timed: ``settings["repeats"]`` calls, or more until
    ``TIMED_SECONDS`` for a fast one (at most ``MAX_RUNS``); a single timed call once one takes longer than
    ``settings["max_seconds"]``."""
    def once():
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    warm = [once()]
    while sum(warm) < WARMUP_SECONDS and len(warm) < MAX_RUNS:
        warm.append(once())
    if warm[0] >= settings["max_seconds"]:
        return [once()]
    times = [once() for _ in range(settings["repeats"])]
    while sum(times) < TIMED_SECONDS and len(times) < MAX_RUNS:
        times.append(once())
    return times


def measure_kernel(case: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    device, dtype = settings["device"], getattr(torch, settings["dtype"])
    fn = attend_fn(case)
    rows = []
    for length in settings["lengths"]:
        gen = torch.Generator().manual_seed(length)
        shape = (settings["batch"], settings["heads"], length, settings["head_dim"])
        q, k, v = (torch.randn(*shape, generator=gen).to(device, dtype).requires_grad_() for _ in range(3))
        row = {**case, "length": length}
        try:
            def step():
                for t in (q, k, v):
                    t.grad = None
                fn(q, k, v).float().sum().backward()
                _sync(device)

            if not rows:  # a first call compiles the case's Triton kernels (seconds): never time it
                step()
            times = _timed(step, settings)
            for t in (q, k, v):
                t.grad = None
            with PeakMemory(device) as memory:
                step()
            row.update(seconds=statistics.median(times), timed_runs=len(times), peak_bytes=memory.peak)
        except torch.OutOfMemoryError:
            row.update(seconds=None, peak_bytes=None, error="out of memory")
        rows.append(row)
        measured = (f"{1e3 * row['seconds']:10.2f} ms {row['peak_bytes'] / 2**20:9.1f} MiB" if row.get("seconds")
                    else row.get("error", ""))
        print(f"{case['label']:28s} T={length:6d} {measured}", file=sys.stderr, flush=True)
        del q, k, v
        if row.get("seconds") is None or row["seconds"] > settings["max_seconds"]:
            break
    return rows


def measure_training(case: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    from experiments.model import ModelConfig, Transformer
    from experiments.train import TrainConfig, make_optimizer

    device = settings["device"]
    torch.manual_seed(0)
    config = ModelConfig(d_model=settings["train_width"], num_layers=2, num_heads=settings["heads"],
                         attention=attention.make_config(case["variant"]))
    model = Transformer(config, vocab_size=256, max_len=settings["train_length"]).to(device)
    optimizer = make_optimizer(model, TrainConfig())
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(256, (settings["train_batch"], settings["train_length"] + 1), generator=gen).to(device)
    autocast = device == "cuda"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)

    step()
    times = []
    for _ in range(settings["train_steps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    tokens_per_step = settings["train_batch"] * settings["train_length"]
    print(f"train {case['label']:22s} {1e3 * seconds:9.1f} ms/step {tokens_per_step / seconds:10.0f} tok/s",
          file=sys.stderr, flush=True)
    return [{**case, "length": settings["train_length"], "seconds_per_step": seconds,
             "tokens_per_second": tokens_per_step / seconds}]


@torch.no_grad()
def measure_decoding(case: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Seconds per generated token of one attention layer (projections included, width ``train_width``) with
    ``decode_length`` keys in its state: the step a decoder takes per token (the key-value cache, or a
    linear-attention state), forward only."""
    device = settings["device"]
    torch.manual_seed(0)
    module = attention.build_module(attention.make_config(case["variant"]), d_model=settings["train_width"],
                                    num_heads=settings["heads"]).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    prefix = torch.randn(1, settings["decode_length"], settings["train_width"], generator=gen).to(device)
    token = torch.randn(1, 1, settings["train_width"], generator=gen).to(device)
    _, state = module(prefix, output_final_state=True)

    def step():
        module(token, initial_state=state, output_final_state=True)
        _sync(device)

    step()
    seconds = statistics.median(_timed(step, settings))
    print(f"decode {case['label']:21s} {1e6 * seconds:9.1f} us/token at {settings['decode_length']} keys",
          file=sys.stderr, flush=True)
    return [{**case, "length": settings["decode_length"], "seconds_per_token": seconds}]


def matmul_peak_tflops(device: str, dtype: torch.dtype) -> float:
    """The device's measured matrix-product throughput (TFLOP/s), the reference for kernel efficiency."""
    n = 8192 if device == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times) / 1e12


def attention_tflops(row: dict[str, Any], settings: dict[str, Any]) -> float | None:
    """FlashAttention's convention: causal fwd = 2 B H T^2 D FLOPs, fwd+bwd = 3.5 x fwd."""
    if not row.get("seconds"):
        return None
    flops = 3.5 * 2 * settings["batch"] * settings["heads"] * row["length"] ** 2 * settings["head_dim"]
    return flops / row["seconds"] / 1e12


# --- the driver ------------------------------------------------------------------------------------------------


def _worker(kind: str, case: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": str(settings["threads"]),
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "experiments.bench_scaling", "--worker", kind,
                           json.dumps({"case": case, "settings": settings})],
                          env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        return [{**case, "error": f"worker exited with {done.returncode}"}]
    return json.loads(done.stdout)


def _ratio(value, base):
    return None if value is None or not base else value / base


def slope(rows: list[dict[str, Any]], key: str, lo: int, hi: int) -> float | None:
    by_length = {r["length"]: r.get(key) for r in rows}
    if not by_length.get(lo) or not by_length.get(hi):
        return None
    return math.log(by_length[hi] / by_length[lo]) / math.log(hi / lo)


def targets(kernels: list[dict[str, Any]], training: list[dict[str, Any]], device: str,
            settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The scaling targets the forms are built to meet, each with the measured value and whether it holds
    (None: not measured)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in kernels:
        by_label.setdefault(row["label"], []).append(row)

    def at(label, length, key):
        return next((r.get(key) for r in by_label.get(label, []) if r["length"] == length), None)

    out = []

    def target(name, value, holds):
        out.append({"target": name, "value": value, "holds": None if value is None else bool(holds(value))})

    if device == "cpu":
        for label in (lab for lab in by_label if "(chunked)" in lab or "(recurrent)" in lab):
            for key, what in (("seconds", "time"), ("peak_bytes", "memory")):
                target(f"{label}: {what} log-log slope 1024..8192 <= 1.15",
                       slope(by_label[label], key, 1024, 8192), lambda s: s <= 1.15)
        for label in (lab for lab in by_label if "(chunked)" in lab):
            target(f"{label}: time / SDPA at 8192 <= 1/3", at(label, 8192, "seconds_ratio"), lambda r: r <= 1 / 3)
        for label in (lab for lab in by_label if "(blockwise)" in lab):
            target(f"{label}: peak memory / SDPA at 8192 <= 1.5", at(label, 8192, "peak_ratio"), lambda r: r <= 1.5)
        rela = next((r for r in training if r["variant"] == "rela_g"), None)
        target(f"rela_g: training step time / softmax at {settings['train_length']} <= 1.1",
               rela and rela.get("step_ratio"), lambda r: r <= 1.1)
    else:
        for label in (lab for lab in by_label if "(fused)" in lab):
            for length in (n for n in settings["lengths"] if n >= 2048):
                target(f"{label}: time / SDPA at {length} <= 1 (aim 1/1.2)", at(label, length, "seconds_ratio"),
                       lambda r: r <= 1.0)
        for label in (lab for lab in by_label if "(chunked)" in lab):
            for length in (n for n in settings["lengths"] if n >= 4096):
                target(f"{label}: time / SDPA at {length} < 1", at(label, length, "seconds_ratio"), lambda r: r < 1)
    return out


def _times(ratio: float | None) -> str:
    """A ratio for the table; n/a where the baseline measured 0 (e.g. SDPA's peak fitting in pages already held)."""
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lengths = s["lengths"]
    lines = [f"# Attention scaling: {report['device']}", "",
             f"{report['date']}, torch {report['torch']}, {s['threads']} thread(s), causal, B={s['batch']} "
             f"H={s['heads']} D={s['head_dim']}, {s['dtype']}. Command: `{report['command']}`.", "",
             "Forward+backward time in ms and peak memory in MiB (ratio to softmax SDPA at the same length, "
             "same run); blank: not run (the case passed the time limit at a shorter length).", "",
             "| case | " + " | ".join(f"T={n}" for n in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for label in dict.fromkeys(r["label"] for r in report["kernels"]):
        cells = []
        for n in lengths:
            row = next((r for r in report["kernels"] if r["label"] == label and r["length"] == n), None)
            if row is None or not row.get("seconds"):
                cells.append(row.get("error", "") if row else "")
                continue
            cells.append(f"{1e3 * row['seconds']:.1f} ms ({_times(row['seconds_ratio'])}), "
                         f"{row['peak_bytes'] / 2**20:.0f} MiB ({_times(row['peak_ratio'])})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if report["training"]:
        lines += ["", f"Training step (2 layers, width {s['train_width']}, batch {s['train_batch']}, length "
                  f"{s['train_length']}, AdamW), default form of each variant:", "",
                  "| variant | ms / step | tokens / s | time x softmax |", "|---|---|---|---|"]
    for row in report["training"]:
        lines.append(f"| {row['label']} | {1e3 * row['seconds_per_step']:.1f} | {row['tokens_per_second']:.0f} | "
                     f"{_times(row['step_ratio'])} |")
    if report.get("decoding"):
        lines += ["", f"Decoding: one attention layer (width {s['train_width']}, projections included), one token "
                  f"with {s['decode_length']} keys in its state, forward only:", "",
                  "| variant | us / token | time x softmax |", "|---|---|---|"]
    for row in report.get("decoding", []):
        lines.append(f"| {row['label']} | {1e6 * row['seconds_per_token']:.1f} | {_times(row['token_ratio'])} |")
    if report.get("matmul_peak_tflops"):
        lines += ["", f"Measured matrix-product peak: {report['matmul_peak_tflops']:.1f} TFLOP/s ({s['dtype']})."]
    if report["targets"]:
        lines += ["", "| target | measured | holds |", "|---|---|---|"]
    for t in report["targets"]:
        value = "not measured" if t["value"] is None else f"{t['value']:.3f}"
        holds = "not measured" if t["holds"] is None else ("yes" if t["holds"] else "no")
        lines.append(f"| {t['target']} | {value} | {holds} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    styles = {"parallel": ":", "materialised": ":", "chunked": "-", "blockwise": "-", "fused": "-",
              "recurrent": "--", None: "-"}
    labels = list(dict.fromkeys(r["label"] for r in report["kernels"]))
    cmap = plt.get_cmap("tab20")
    variants = list(dict.fromkeys(r["variant"] for r in report["kernels"]))
    for label in labels:
        rows = [r for r in report["kernels"] if r["label"] == label and r.get("seconds")]
        if not rows:
            continue
        first = rows[0]
        color = "black" if label == BASELINE else cmap(variants.index(first["variant"]) % 20)
        width = 2.5 if label == BASELINE else 1.2
        for ax, key, scale in ((axes[0], "seconds", 1e3), (axes[1], "peak_bytes", 2**-20)):
            ax.plot([r["length"] for r in rows], [r[key] * scale for r in rows], styles.get(first["form"], "-"),
                    marker="o", markersize=3, color=color, linewidth=width, label=label)
    for ax, title in ((axes[0], "forward+backward time (ms)"), (axes[1], "peak memory beyond inputs (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    s = report["settings"]
    fig.suptitle(f"Causal attention scaling on {report['device']} (B={s['batch']} H={s['heads']} D={s['head_dim']}, "
                 f"{s['dtype']}); dotted: T x T matrix, dashed: recurrent, black: softmax SDPA", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def build_parser() -> cli.Parser:
    parser = cli.Parser(prog="python -m experiments.bench_scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="JSON file to write (a .md table and a .png plot are written beside it)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="default: 256..8192 CPU, 512..32768 GPU")
    parser.add_argument("--only", nargs="+", default=None,
                        help="only these case labels (softmax SDPA and materialised always run)")
    parser.add_argument("--cases", default="forms", choices=["forms", "defaults"],
                        help="every variant in each of its forms, or once at its default form (labelled by name)")
    parser.add_argument("--no-training", action="store_true", help="skip the training-step throughput")
    parser.add_argument("--no-decoding", action="store_true", help="skip the per-token decoding time")
    parser.add_argument("--decode-length", type=int, default=DECODE_LENGTH, help="keys in the state when decoding")
    parser.add_argument("--no-plot", action="store_true", help="write the JSON and the table only")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=None, help="default 32 on CPU, 64 on a GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=3.0,
                        help="stop growing a case once one run takes longer than this")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--train-length", type=int, default=512)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-width", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    return parser


def run_worker(kind: str, payload: str) -> int:
    """Inside a worker process: measure one case and print its rows as JSON."""
    spec = json.loads(payload)
    torch.set_num_threads(spec["settings"]["threads"])
    measure = {"kernel": measure_kernel, "train": measure_training, "decode": measure_decoding}[kind]
    print(json.dumps(measure(spec["case"], spec["settings"])))
    return 0


def make_settings(args: argparse.Namespace, parser: cli.Parser) -> dict[str, Any]:
    """The run's settings (passed to every worker and written to the report); refuses impossible ones."""
    if args.out is None:
        parser.error("--out is required")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but CUDA is not available; choose from ['cpu']")
    for name in ("batch", "heads", "repeats", "threads", "train_length", "train_batch", "train_width", "train_steps",
                 "decode_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    gpu = args.device == "cuda"
    return {"device": args.device, "dtype": "bfloat16" if gpu else "float32",
            "lengths": sorted(args.lengths or (GPU_LENGTHS if gpu else CPU_LENGTHS)), "batch": args.batch,
            "heads": args.heads, "head_dim": args.head_dim or (64 if gpu else 32), "repeats": args.repeats,
            "max_seconds": args.max_seconds, "threads": args.threads, "train_length": args.train_length,
            "train_batch": args.train_batch, "train_width": args.train_width, "train_steps": args.train_steps,
            "decode_length": args.decode_length}


def select_cases(args: argparse.Namespace, parser: cli.Parser) -> list[dict[str, Any]]:
    """The kernel cases to run: all, or ``--only`` these and the two softmax baselines."""
    all_cases = cases(args.device, defaults=args.cases == "defaults")
    if args.only:
        unknown = sorted(set(args.only) - {c["label"] for c in all_cases})
        if unknown:
            parser.error(f"unknown case(s) {unknown}; valid cases are {[c['label'] for c in all_cases]}")
        all_cases = [c for c in all_cases if c["label"] in args.only or c["label"] in (BASELINE, MATERIALISED)]
    return all_cases


def run_kernels(all_cases: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Every case's rows, each with its time and peak memory as a ratio to SDPA's at the same length."""
    kernels = [row for case in all_cases for row in _worker("kernel", case, settings)]
    base = {r["length"]: r for r in kernels if r["label"] == BASELINE}
    for row in kernels:
        ref = base.get(row.get("length"), {})
        row["seconds_ratio"] = _ratio(row.get("seconds"), ref.get("seconds"))
        row["peak_ratio"] = _ratio(row.get("peak_bytes"), ref.get("peak_bytes"))
    return kernels


def run_per_variant(kind: str, names: list[str], settings: dict[str, Any], key: str,
                    ratio: str) -> list[dict[str, Any]]:
    """One ``kind`` worker (train or decode) per variant at its default form; ``ratio`` is ``key`` over
    softmax's. Rows of a worker that failed are dropped."""
    rows = [row for name in names for row in _worker(kind, {"label": name, "variant": name, "form": None}, settings)]
    softmax = next((r.get(key) for r in rows if r["variant"] == "softmax"), None)
    for row in rows:
        row[ratio] = _ratio(row.get(key), softmax)
    return [r for r in rows if "error" not in r]


def write_report(report: dict[str, Any], out: Path, with_plot: bool) -> None:
    """The JSON, its Markdown table and (``with_plot``) the log-log plot, each written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    written = [out, out.with_suffix(".md")]
    if with_plot:
        plot(report, out.with_suffix(".png"))
        written.append(out.with_suffix(".png"))
    print("wrote " + ", ".join(map(str, written)), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(*args.worker)
    settings = make_settings(args, parser)
    all_cases = select_cases(args, parser)

    kernels = run_kernels(all_cases, settings)
    train_names = [name for name in attention.names() if not args.no_training and (
        not args.only or name == "softmax" or any(c["variant"] == name for c in all_cases))]
    training = run_per_variant("train", train_names, settings, "seconds_per_step", "step_ratio")
    decode_names = [] if args.no_decoding else list(dict.fromkeys(c["variant"] for c in all_cases))
    decoding = run_per_variant("decode", decode_names, settings, "seconds_per_token", "token_ratio")
    gpu = args.device == "cuda"
    report = {
        "device": torch.cuda.get_device_name() if gpu else f"CPU ({platform.machine()}, {os.cpu_count()} cores)",
        "date": datetime.date.today().isoformat(),
        "command": "python -m experiments.bench_scaling " + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch": torch.__version__,
        "settings": settings,
        "kernels": kernels,
        "training": training,
        "decoding": decoding,
    }
    if gpu:
        report["matmul_peak_tflops"] = matmul_peak_tflops("cuda", torch.bfloat16)
        for row in kernels:
            row["tflops"] = attention_tflops(row, settings)
    # the scaling targets are about forms and training; the speed table's verdict is the ledger's (R4)
    report["targets"] = targets(kernels, training, args.device, settings) if args.cases == "forms" else []
    write_report(report, Path(args.out), with_plot=not args.no_plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
