"""Shared test set-up: one torch thread (two cores; several threads per worker oversubscribe the cores).

Without CUDA, Triton kernels run in Triton's interpreter on CPU tensors
(fp32 only: its bf16 dots are wrong); the variable must be set before any
kernel is defined, hence here.
"""

import os

import torch

torch.set_num_threads(1)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_terminal_summary(terminalreporter):
    """Print how many random configs the property tests tried (shown without -s)."""
    import sys

    module = sys.modules.get("test_properties")
    if module is not None and module.TRIED["tried"]:
        tried = module.TRIED
        failed = [r for r in terminalreporter.stats.get("failed", []) if "test_properties" in r.nodeid]
        terminalreporter.write_line(f"property tests: {tried['tried']} random task configs tried, "
                                    f"{tried['rejected']} rejected with ConfigError, "
                                    f"{len(failed)} task(s) with any other outcome")


import pytest  # noqa: E402


@pytest.fixture
def live_pid():
    """The pid of another live process (a lock naming it has a live holder); killed after the test."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield holder.pid
    holder.kill()
    holder.wait()
