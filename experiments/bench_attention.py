"""Time forward+backward of every attention variant's functional core (a benchmark, not a test).

    python -m experiments.bench_attention --out benchmarks/attention_cpu.md

For each sequence length, every registered variant (and each form of the
linear family) runs ``attend`` forward and backward on the same random
``(B, H, T, D)`` inputs; the median of ``--repeats`` timed runs after
``--warmup`` untimed ones is reported together with its ratio to softmax
measured in the same run, so the ratios are comparable across machines.
The table is written atomically as Markdown, with the device, thread count
and library versions in its header.
"""

from __future__ import annotations

import csv
import io
import platform
import statistics
import sys
import time
from typing import Any

import torch

from experiments import attention, cli
from experiments.attention._linear import LinearFamilyModule
from experiments.bench_scaling import attend_fn
from experiments.atomic import atomic_write_text


def cases() -> list[dict[str, Any]]:
    """Every variant at its defaults (``form`` None: its ``auto``) and each form of the linear family, as the
    scaling benchmark's case dicts ``{"label", "variant", "form"}``."""
    out = []
    for name in attention.names():
        if issubclass(attention.get(name).module, LinearFamilyModule):
            out += [{"label": f"{name} ({form})", "variant": name, "form": form} for form in attention.get(name).forms]
        else:
            out.append({"label": name, "variant": name, "form": None})
    return out


def time_one(fn, q, k, v, *, warmup: int, repeats: int) -> float:
    def run():
        for t in (q, k, v):
            t.grad = None
        fn(q, k, v).sum().backward()
        if q.is_cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m experiments.bench_attention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="Markdown file to write")
    parser.add_argument("--csv", default=None, help="also write variant,length,seconds,ratio,device rows here")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024], help="sequence lengths")
    parser.add_argument("--variants", nargs="+", default=None, help="only these labels (default: all)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but CUDA is not available; choose from ['cpu']")
    torch.set_num_threads(args.threads)

    rows = []
    for length in args.lengths:
        generator = torch.Generator().manual_seed(length)
        shape = (args.batch, args.heads, length, args.head_dim)
        q, k, v = (torch.randn(*shape, generator=generator).to(args.device).requires_grad_() for _ in range(3))
        timings = {}
        for case in cases():
            label = case["label"]
            if args.variants and label not in args.variants and label != "softmax":
                continue
            timings[label] = (case, time_one(attend_fn(case), q, k, v, warmup=args.warmup, repeats=args.repeats))
            print(f"T={length:5d} {label:28s} {1e3 * timings[label][1]:9.2f} ms", file=sys.stderr)
        base = timings["softmax"][1]
        rows += [{**case, "length": length, "seconds": seconds, "seconds_ratio": seconds / base}
                 for case, seconds in timings.values()]

    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
    lines = [
        "# Attention forward+backward timings",
        "",
        f"Causal self-attention, B={args.batch} H={args.heads} D={args.head_dim}, fp32, median of "
        f"{args.repeats} after {args.warmup} warm-up; device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s). Ratio = time / softmax time at the same length, same run.",
        "",
        f"Command: `python -m experiments.bench_attention --out {args.out} --lengths "
        f"{' '.join(map(str, args.lengths))} --device {args.device}`",
        "",
        "| variant | " + " | ".join(f"T={n} ms (x softmax)" for n in args.lengths) + " |",
        "|---|" + "---|" * len(args.lengths),
    ]
    for label in dict.fromkeys(row["label"] for row in rows):
        cells = [f"{1e3 * r['seconds']:.1f} ({r['seconds_ratio']:.2f}x)" for n in args.lengths for r in rows
                 if r["length"] == n and r["label"] == label]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    if args.csv:  # the scaling benchmark's row fields (label, variant, form, length, seconds, seconds_ratio)
        out = io.StringIO()
        writer = csv.DictWriter(out, ["label", "variant", "form", "length", "seconds", "seconds_ratio", "device"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "form": row["form"] or "", "seconds": f"{row['seconds']:.6f}",
                          "seconds_ratio": f"{row['seconds_ratio']:.4f}", "device": device} for row in rows)
        atomic_write_text(args.csv, out.getvalue())
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
