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

import dataclasses
import platform
import statistics
import sys
import time

import torch

from experiments import attention, cli
from experiments.attention._linear import LinearFamilyModule
from experiments.atomic import atomic_write_text


def cases() -> list[tuple[str, str, dict]]:
    """(label, variant, params): every variant at its defaults, and every form of the linear family."""
    out = []
    for name in attention.names():
        defaults = dataclasses.asdict(attention.make_config(name))
        if issubclass(attention.get(name).module, LinearFamilyModule):
            for form in attention.get(name).forms:
                out.append((f"{name} ({form})", name, {**defaults, "form": form}))
        else:
            out.append((name, name, defaults))
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
        for label, name, params in cases():
            if args.variants and label not in args.variants and label != "softmax":
                continue
            variant = attention.get(name)
            kwargs = attention.accepted_params(variant.attend, params)
            fn = lambda a, b, c, _v=variant, _k=kwargs: _v.attend(a, b, c, causal=True, **_k)  # noqa: E731
            timings[label] = time_one(fn, q, k, v, warmup=args.warmup, repeats=args.repeats)
            print(f"T={length:5d} {label:28s} {1e3 * timings[label]:9.2f} ms", file=sys.stderr)
        base = timings["softmax"]
        rows += [(length, label, seconds, seconds / base) for label, seconds in timings.items()]

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
    for label in dict.fromkeys(label for _, label, _, _ in rows):
        cells = [f"{1e3 * s:.1f} ({r:.2f}x)" for n in args.lengths for (m, lab, s, r) in rows if m == n and lab == label]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    if args.csv:
        table = ["variant,length,seconds,ratio,device"]
        table += [f"{label},{n},{seconds:.6f},{ratio:.4f},{device}" for n, label, seconds, ratio in rows]
        atomic_write_text(args.csv, "\n".join(table) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
