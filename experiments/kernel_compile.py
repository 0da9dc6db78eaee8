"""Compile every Triton kernel of the package for NVIDIA GPUs on a machine without one.

    python -m experiments.kernel_compile --out benchmarks/triton_compile.md     # what `make kernels` runs
    python -m experiments.kernel_compile --sample                               # what the tests run

Triton's interpreter (``TRITON_INTERPRET=1``, how the tests run the kernels
on a CPU) executes a kernel as plain Python: it never types the program, so
a kernel can pass every CPU test and still fail to compile on a GPU (a
helper that returns tiles of two shapes, say). This module compiles the real
thing: Triton lowers each kernel to PTX for a target (``GPUTarget("cuda",
80 | 90, 32)``) and assembles it with the ``ptxas`` its wheel ships, then
reads the cubin's resources.

What is compiled is what runs: each case builds its launches with
:func:`experiments.attention._elementwise_triton.forward_launch` and
``backward_launches``, the functions the autograd function launches with,
on small CPU tensors of the case's dtype and shape, and Triton's own binder
turns those arguments into the signature, constexprs and divisibility hints
a GPU launch would compile (so a stride of 1 or a length that is a multiple
of 16 is specialised as it would be on the device). The binder and
``JITFunction._pack_args`` are Triton internals (as of 3.9): a Triton that
changes them fails these checks loudly rather than checking something else.

The cases: every kernel (forward, dK/dV, dQ) x dtype (fp32, fp16, bf16) x
padded head dim the kernel takes at that dtype (16 up to
``_elementwise_spec.max_head_dim``, the largest its block table covers;
larger ones run blockwise) x target, each at every
epilogue (activation x bias mode x row mode x causal) and once at a ragged
shape (a length and a head dim that are not multiples of 16). ``--sample``
compiles each (kernel, dtype, head dim, target) once, its epilogue and
shape rotating through the full set, so that a CPU test run compiles every
kernel at every dtype, head dim and target (66 compilations).

A case fails when compilation fails, when a kernel spills registers to
local memory, or when it needs more shared memory than the target has.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from experiments.atomic import atomic_write_text
from experiments.attention import _elementwise_spec as spec

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# compute capability -> (name, the most shared memory one block may use, bytes)
TARGETS = {80: ("sm_80 (A100)", 163 * 1024), 90: ("sm_90 (H100/H200)", 227 * 1024)}
KERNELS = spec.KERNELS


def head_blocks(dtype: str) -> tuple[int, ...]:
    """The padded head dims the fused kernel takes at ``dtype``: 16, 32, ... up to its limit."""
    limit = spec.max_head_dim(DTYPES[dtype])
    return tuple(16 * 2**i for i in range(8) if 16 * 2**i <= limit)


def rows(archs: Iterable[int]) -> list[tuple[str, str, int, int]]:
    """Every (kernel, dtype, padded head dim, target) the dispatcher can launch."""
    return [(kernel, dtype, block, arch) for kernel in KERNELS for dtype in DTYPES for block in head_blocks(dtype)
            for arch in archs]


@dataclasses.dataclass(frozen=True)
class Case:
    """One compilation: a kernel at a dtype, head dim, target, epilogue and shape."""

    kernel: str  # fwd, dkdv or dq
    dtype: str  # a key of DTYPES
    head_block: int  # the padded head dim the kernel is specialised for
    arch: int  # compute capability: 80 or 90
    activation: int = 0  # the kernel's ACT, BIAS_MODE and ROW_MODE codes
    bias_mode: int = 0
    row_mode: int = 0
    causal: bool = True
    ragged: bool = False  # a length and head dim that are not multiples of 16

    @property
    def row(self) -> tuple[str, str, int, int]:
        """The table row this case counts towards."""
        return self.kernel, self.dtype, self.head_block, self.arch

    def shapes(self) -> tuple[int, int, int]:
        """``(Tq, Tk, head dim)``: aligned (64, 64, head block) or ragged (33 or 100 queries, 100 keys, 3/4 of it)."""
        if not self.ragged:
            return 64, 64, self.head_block
        head_dim = max(self.head_block * 3 // 4, self.head_block // 2 + 1)
        return (100 if self.causal else 33), 100, head_dim


def epilogues() -> list[tuple[int, int, int, bool]]:
    """Every (activation, bias mode, row mode, causal) the kernels take."""
    return list(itertools.product(range(len(spec.ACTIVATIONS)), range(len(spec.BIAS_MODES)),
                                  range(len(spec.ROW_MODES)), (True, False)))


def all_cases(archs: Iterable[int] = tuple(TARGETS)) -> list[Case]:
    """The full matrix: each row at every epilogue, and once ragged."""
    cases = []
    for kernel, dtype, block, arch in rows(archs):
        cases += [Case(kernel, dtype, block, arch, *modes) for modes in epilogues()]
        cases.append(Case(kernel, dtype, block, arch, activation=1, bias_mode=1, row_mode=2, ragged=True))
    return cases


def sample_cases(archs: Iterable[int] = tuple(TARGETS)) -> list[Case]:
    """Each row once; epilogue and shape rotate, so each kernel and target meets every epilogue value."""
    modes = epilogues()
    return [Case(kernel, dtype, block, arch, *modes[(i * 7) % len(modes)], ragged=i % 3 == 0)
            for i, (kernel, dtype, block, arch) in enumerate(rows(archs))]


def launch_for(case: Case):
    """The :class:`Launch` the package would run for ``case``, on small CPU tensors."""
    from experiments.attention import _elementwise_triton as fused

    tq, tk, head_dim = case.shapes()
    dtype = DTYPES[case.dtype]
    q, dq = (torch.zeros(2, 3, tq, head_dim, dtype=dtype) for _ in range(2))
    k, v, dk, dv = (torch.zeros(2, 3, tk, head_dim, dtype=dtype) for _ in range(4))
    modes = dict(causal=case.causal, scale=0.25, act=case.activation, bias_mode=case.bias_mode, bias=-1.0,
                 row_mode=case.row_mode)
    if case.kernel == "fwd":
        return fused.forward_launch(q, k, v, torch.zeros_like(q), **modes)
    dkdv, dq_launch = fused.backward_launches(q, k, v, torch.zeros_like(q), dq, dk, dv, **modes)
    return dkdv if case.kernel == "dkdv" else dq_launch


def _resources(cubin: bytes) -> dict[str, int]:
    """Registers, local (spilled) and stack bytes of a cubin, as ``cuobjdump`` reads them."""
    import tempfile

    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", file.name], capture_output=True, text=True,
                              check=True).stdout
    found = {key: int(value) for key, value in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", text)}
    return {"registers": found["REG"], "local_bytes": found["LOCAL"], "stack_bytes": found["STACK"]}


def _reason(error: BaseException) -> str:
    """The innermost cause of a failed compilation in one line (Triton nests the helper's error in the
    kernel's, each with a source excerpt)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line for line in str(getattr(error, "error_message", None) or error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def compile_case(case: Case) -> dict:
    """Compile ``case`` for its target; a dict of its resources, or its error."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    launch = launch_for(case)
    kernel = launch.kernel
    if not hasattr(kernel, "params"):  # an InterpretedFunction: TRITON_INTERPRET was set at import
        raise RuntimeError("the kernels were defined under TRITON_INTERPRET=1; compile them in a process without it")
    target = GPUTarget("cuda", case.arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    kwargs = {**launch.constexprs, **launch.options}
    bound, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    start = time.perf_counter()
    try:
        compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                                  options=options.__dict__)
    except Exception as error:  # noqa: BLE001 - every way a compilation fails is a result of the check
        return {"case": case, "error": _reason(error)}
    return {"case": case, "seconds": time.perf_counter() - start, "shared_bytes": compiled.metadata.shared,
            "blocks": (launch.constexprs["BLOCK_M"], launch.constexprs["BLOCK_N"]), "warps": launch.options["num_warps"],
            **_resources(compiled.asm["cubin"])}


def problems(result: dict) -> list[str]:
    """What is wrong with one compiled case (empty when nothing is)."""
    case = result["case"]
    if "error" in result:
        return [f"{case}: does not compile: {result['error']}"]
    found = []
    if result["local_bytes"] or result["stack_bytes"]:
        found.append(f"{case}: spills ({result['local_bytes']} bytes local, {result['stack_bytes']} stack) at "
                     f"{result['registers']} registers")
    if result["shared_bytes"] > TARGETS[case.arch][1]:
        found.append(f"{case}: needs {result['shared_bytes']} bytes of shared memory, more than sm_{case.arch} has")
    return found


def _init() -> None:
    os.environ.pop("TRITON_INTERPRET", None)
    torch.set_num_threads(1)


def compile_all(cases: list[Case], workers: int) -> list[dict]:
    """Compile ``cases`` in ``workers`` processes (none of them under the interpreter)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter's kernels cannot be compiled")
    if workers <= 1:
        return [compile_case(case) for case in cases]
    with ProcessPoolExecutor(workers, initializer=_init) as pool:
        return list(pool.map(compile_case, cases, chunksize=4))


def table(results: list[dict]) -> str:
    """A Markdown table: one row per (kernel, dtype, head dim, target), the worst of its cases."""
    import triton

    groups: dict[tuple, list[dict]] = {}
    for result in results:
        groups.setdefault(result["case"].row, []).append(result)
    lines = [
        "# Triton kernels compiled for NVIDIA targets",
        "",
        "Built by `make kernels` (`python -m experiments.kernel_compile`) on a machine without a GPU: every",
        "kernel of `experiments/attention/_elementwise_triton.py` compiled by Triton for each target and",
        "assembled by the `ptxas` its wheel ships, at every epilogue (activation, bias mode, row mode, causal)",
        "and at a ragged shape; each row is the worst of those cases. Registers are per thread (at most 255);",
        "spilled bytes are the cubin's local memory and stack frame, where ptxas puts what it spills (0 in every",
        "row is the check `tests/test_kernel_compile.py` makes of this table); shared memory is per block.",
        "",
        f"{datetime.date.today().isoformat()}: Triton {triton.__version__}, torch {torch.__version__}, "
        f"{platform.machine()}; {len(results)} compilations.",
        "",
        "| kernel | dtype | head dim | target | blocks (q x k) | warps | registers | spilled bytes | "
        "shared KiB | cases |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for (kernel, dtype, block, arch), group in groups.items():
        failed = [r for r in group if "error" in r]
        ok = [r for r in group if "error" not in r]
        if failed:
            lines.append(f"| {kernel} | {dtype} | {block} | sm_{arch} | | | fails to compile | | | {len(group)} |")
            continue
        worst = max(ok, key=lambda r: (r["local_bytes"] + r["stack_bytes"], r["registers"]))
        shared = max(r["shared_bytes"] for r in ok)
        lines.append(f"| {kernel} | {dtype} | {block} | sm_{arch} | {worst['blocks'][0]} x {worst['blocks'][1]} | "
                     f"{worst['warps']} | {max(r['registers'] for r in ok)} | "
                     f"{max(r['local_bytes'] + r['stack_bytes'] for r in ok)} | {shared / 1024:.1f} | {len(group)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    parser.add_argument("--sample", action="store_true",
                        help="each kernel, dtype, head dim and target once (epilogues rotate) instead of all")
    parser.add_argument("--arch", type=int, nargs="+", default=list(TARGETS), choices=list(TARGETS),
                        help="compute capabilities to compile for")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="compiling processes")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    os.environ.pop("TRITON_INTERPRET", None)
    cases = (sample_cases if args.sample else all_cases)(args.arch)
    start = time.perf_counter()
    results = compile_all(cases, args.workers)
    found = [line for result in results for line in problems(result)]
    print(f"{len(results)} compilations in {time.perf_counter() - start:.0f} s, {len(found)} problems")
    for line in found:
        print(line)
    if args.out:
        atomic_write_text(args.out, table(results))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
