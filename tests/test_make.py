"""The Makefile's guard: the profile follows nvidia-smi, the device follows torch; when they disagree, refuse.

A GPU box is faked with an ``nvidia-smi`` on PATH that lists one GPU; the
interpreter is this test session's, whose torch is a CPU build here (on a
GPU box with CUDA torch the guard has nothing to refuse, which is checked
too).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, subprocess_env


@pytest.fixture
def make(tmp_path):
    """``make <args>`` with this interpreter, an installed stamp, figures in a temporary folder, and (when
    ``gpu``) an ``nvidia-smi`` that lists one GPU."""
    stamp = tmp_path / "installed"  # this interpreter already has the project
    stamp.touch()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"\n')
    (fake / "nvidia-smi").chmod(0o755)

    def run(*args: str, gpu: bool) -> subprocess.CompletedProcess:
        env = subprocess_env(RESULTS_DIR=str(tmp_path / "results"))
        if gpu:
            env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
        return subprocess.run(["make", *args, f"PYTHON={sys.executable}", f"STAMP={stamp}",
                               f"FIG_DIR={tmp_path / 'figs'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
    return run


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch can use CUDA: there is no disagreement to refuse")
def test_a_gpu_with_a_cpu_only_torch_refuses_the_full_profile_in_one_line_before_any_run(make, tmp_path):
    done = make("figures", gpu=True)  # the default profile on a GPU box is full
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nvidia-smi lists a GPU" in lines[0] and "cannot use CUDA" in lines[0]
    assert "PYTHON=" in lines[0] and "PROFILE=quick" in lines[0]
    assert not (tmp_path / "figs").exists() and not (tmp_path / "results").exists()  # nothing ran
    assert make("bench", gpu=True).returncode == 2


def test_the_guard_lets_agreeing_settings_through(make):
    quick = make("check-device", "PROFILE=quick", gpu=True)  # asked for the CPU-sized profile on purpose
    assert quick.returncode == 0, quick.stderr
    no_gpu = make("check-device", "PROFILE=full", gpu=False)  # the full profile on a CPU machine, asked for
    assert no_gpu.returncode == 0, no_gpu.stderr
    if torch.cuda.is_available():
        assert make("check-device", gpu=True).returncode == 0
