"""The benchmarks' measuring and bookkeeping (their timings are not tested, only produced)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from experiments import attention
from experiments import bench_scaling as bench
from paper_figs import make_ledger
from paper_figs.claims import CLAIMS


def test_peak_memory_sees_a_tensor_allocated_and_freed_inside_the_block():
    with bench.PeakMemory("cpu") as memory:
        x = torch.ones(16 * 2**20)  # 64 MiB
        del x
    assert 60 * 2**20 <= memory.peak <= 80 * 2**20
    with bench.PeakMemory("cpu") as nothing:
        pass
    assert nothing.peak < 8 * 2**20


def test_every_variant_is_benchmarked_in_each_of_its_forms():
    labels = [c["label"] for c in bench.cases("cpu")]
    assert bench.BASELINE in labels and bench.MATERIALISED in labels
    for form in ("parallel", "chunked", "recurrent"):
        assert f"linear ({form})" in labels
    for form in ("materialised", "blockwise"):
        assert f"rela_g ({form})" in labels and f"sigmoid ({form})" in labels
    assert "relu (fused)" not in labels and "relu (fused)" in [c["label"] for c in bench.cases("cuda")]
    assert {"sparsemax", "entmax15", "softmax_ln"} <= set(labels)


def rows(label, variant, form, lengths_values):
    return [{"label": label, "variant": variant, "form": form, "length": n, **values}
            for n, values in lengths_values.items()]


def test_targets_are_verdicts_computed_from_the_measurements():
    settings = {"train_length": 512, "lengths": [1024, 8192]}
    linear = rows("linear (chunked)", "linear", "chunked", {
        1024: {"seconds": 1.0, "peak_bytes": 10.0, "seconds_ratio": 0.9},
        8192: {"seconds": 8.0 * 1.2, "peak_bytes": 80.0, "seconds_ratio": 0.2}})  # time slope 1.09, memory 1.0
    relu = rows("relu (blockwise)", "relu", "blockwise", {8192: {"peak_ratio": 1.6}})
    training = [{"variant": "rela_g", "step_ratio": 1.05}]
    verdicts = {t["target"]: t for t in bench.targets(linear + relu, training, "cpu", settings)}
    assert verdicts["linear (chunked): time log-log slope 1024..8192 <= 1.15"]["holds"] is True
    assert verdicts["linear (chunked): time log-log slope 1024..8192 <= 1.15"]["value"] == pytest.approx(1.0877, 1e-3)
    assert verdicts["linear (chunked): time / SDPA at 8192 <= 1/3"]["holds"] is True
    assert verdicts["relu (blockwise): peak memory / SDPA at 8192 <= 1.5"]["holds"] is False
    assert verdicts["rela_g: training step time / softmax at 512 <= 1.1"]["holds"] is True
    missing = bench.targets(rows("linear (chunked)", "linear", "chunked", {1024: {"seconds": 1.0}}), [], "cpu",
                            settings)
    assert all(t["holds"] is None and t["value"] is None for t in missing)


def test_a_small_run_writes_json_table_and_plot(tmp_path):
    out = tmp_path / "scaling.json"
    argv = ["--out", str(out), "--lengths", "64", "128", "--only", "relu (blockwise)", "linear (chunked)",
            "--repeats", "1", "--train-steps", "1", "--train-length", "32", "--train-width", "16"]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    # the benchmark runs where the machine's accelerator is, as `make bench` does: name that device
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    assert report["device"].startswith(device) and report["settings"]["lengths"] == [64, 128]
    labels = {r["label"] for r in report["kernels"]}
    assert labels == {bench.BASELINE, bench.MATERIALISED, "relu (blockwise)", "linear (chunked)"}
    for row in report["kernels"]:
        assert row["seconds"] > 0 and row["peak_bytes"] >= 0
        if row["label"] == bench.BASELINE:
            assert row["seconds_ratio"] == 1.0
    assert {r["variant"] for r in report["training"]} == {"softmax", "relu", "linear"}
    assert {r["variant"] for r in report["decoding"]} == {"softmax", "relu", "linear"}
    assert all(r["seconds_per_token"] > 0 for r in report["decoding"])
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "| relu (blockwise) |" in out.with_suffix(".md").read_text()


def test_a_first_call_that_compiles_is_not_timed_and_does_not_stop_the_case(monkeypatch):
    lengths_called = []

    def compiling_attend(case):
        def attend(q, k, v):
            if not lengths_called:
                time.sleep(0.6)  # as Triton compiling a case's kernels on their first call
            lengths_called.append(q.shape[-2])
            return q * 1.0
        return attend

    monkeypatch.setattr(bench, "attend_fn", compiling_attend)
    settings = dict(device="cpu", dtype="float32", lengths=[16, 32], batch=1, heads=1, head_dim=4, repeats=3,
                    max_seconds=0.5)
    rows = bench.measure_kernel({"label": "x", "variant": "relu", "form": None}, settings)
    assert [row["length"] for row in rows] == [16, 32]
    assert all(row["seconds"] < 0.1 and row["timed_runs"] >= 3 for row in rows), rows


def test_bad_benchmark_arguments_name_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--out", "x.json", "--only", "relu (flash)"])
    assert exit_info.value.code == 2 and "valid cases are" in capsys.readouterr().err


def test_the_speed_table_is_the_same_benchmark_at_default_forms_and_feeds_the_figure_and_the_ledger(tmp_path):
    defaults = [c for c in bench.cases("cpu", defaults=True) if c["label"] != bench.MATERIALISED]
    assert [c["variant"] for c in defaults] == attention.names() and all(c["form"] is None for c in defaults)
    out = tmp_path / "speed.json"
    assert bench.main(["--out", str(out), "--cases", "defaults", "--no-training", "--no-plot", "--lengths", "16",
                       "--repeats", "1", "--only", "rela_g", "sparsemax", "entmax15"]) == 0
    report = json.loads(out.read_text())
    assert sorted(r["label"] for r in report["kernels"]) == sorted([bench.BASELINE, bench.MATERIALISED, "entmax15",
                                                                    "rela_g", "sparsemax"])
    assert sorted(r["variant"] for r in report["decoding"]) == ["entmax15", "rela_g", "softmax", "sparsemax"]
    assert report["training"] == [] and report["targets"] == [] and not out.with_suffix(".png").exists()
    assert next(r for r in report["kernels"] if r["variant"] == "softmax")["seconds_ratio"] == 1.0
    from paper_figs import plot_speed
    assert plot_speed.main([str(out), str(tmp_path / "speed.png")]) == 0
    assert (tmp_path / "speed.png").stat().st_size > 10_000
    r4 = next(c for c in CLAIMS if c.id == "R4")
    ours, verdict = r4.verdict(make_ledger.gather(tmp_path / "none", tmp_path / "none", out))
    assert verdict in ("reproduced", "partly", "not reproduced") and "rela_g" in ours and "decoding speed" in ours


def test_the_materialised_softmax_case_matches_sdpa():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 16, 8, generator=gen) for _ in range(3))
    fused = bench.attend_fn({"label": bench.BASELINE, "variant": "softmax", "form": None})
    formed = bench.attend_fn({"label": bench.MATERIALISED, "variant": "softmax", "form": "materialised"})
    torch.testing.assert_close(formed(q, k, v), fused(q, k, v), atol=1e-5, rtol=1e-5)

