"""The Triton kernels compile for sm_80 and sm_90 on this CPU-only machine, without spilling.

The kernel tests run the kernels in Triton's interpreter, which executes
plain Python and so cannot see a program the compiler rejects; these
compile them for real (:mod:`experiments.kernel_compile`), in a subprocess
because this test session defines the kernels under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import ROOT, subprocess_env

from experiments import kernel_compile
from experiments.attention import _elementwise_spec as spec

TABLE = ROOT / "benchmarks" / "triton_compile.md"
pytest.importorskip("triton")


def test_every_kernel_compiles_at_every_dtype_head_dim_and_target_without_spilling(tmp_path):
    # each (kernel, dtype, head dim, target) once, epilogues and shapes rotating (66 compilations);
    # `make kernels` compiles every epilogue of each into the committed table
    done = subprocess.run([sys.executable, "-m", "experiments.kernel_compile", "--sample", "--workers", "2"],
                          cwd=ROOT, env=subprocess_env(TRITON_CACHE_DIR=str(tmp_path / "cache")),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    compiled = int(re.search(r"(\d+) compilations", done.stdout).group(1))
    assert compiled == len(kernel_compile.rows(kernel_compile.TARGETS)) and ", 0 problems" in done.stdout


def test_the_sample_meets_every_epilogue_value_and_a_ragged_shape_for_each_kernel_and_target():
    for kernel in kernel_compile.KERNELS:
        for arch in kernel_compile.TARGETS:
            cases = [c for c in kernel_compile.sample_cases([arch]) if c.kernel == kernel]
            assert {c.activation for c in cases} == {0, 1} and {c.bias_mode for c in cases} == {0, 1, 2}
            assert {c.row_mode for c in cases} == {0, 1, 2} and {c.causal for c in cases} == {True, False}
            assert any(c.ragged for c in cases) and any(not c.ragged for c in cases)


def committed_rows() -> dict[tuple[str, str, int, int], dict[str, str]]:
    rows = {}
    for line in TABLE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 10 and cells[0] in kernel_compile.KERNELS:
            kernel, dtype, block, target, blocks, warps, registers, spilled, shared, cases = cells
            rows[(kernel, dtype, int(block), int(target.removeprefix("sm_")))] = dict(
                blocks=blocks, warps=warps, registers=registers, spilled=spilled, cases=cases)
    return rows


def test_the_committed_table_covers_every_launch_with_no_spills_at_todays_blocks():
    rows = committed_rows()
    assert sorted(rows) == sorted(kernel_compile.rows(kernel_compile.TARGETS)), "rebuild it: make kernels"
    epilogues = len(kernel_compile.epilogues())
    for (kernel, dtype, block, _), row in rows.items():
        blocks = spec.BLOCKS_FP32 if dtype == "fp32" else spec.BLOCKS_16BIT
        query_block, key_block, warps = blocks[(kernel, block)]
        assert row["blocks"] == f"{query_block} x {key_block}" and row["warps"] == str(warps), \
            f"{kernel} {dtype} {block}: the table's blocks are not the code's; rebuild it: make kernels"
        assert int(row["registers"]) <= 255 and row["spilled"] == "0"
        assert int(row["cases"]) == epilogues + 1  # every epilogue, and the ragged shape
