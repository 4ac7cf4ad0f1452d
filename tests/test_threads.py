"""train.threads: auto counts the cores other work keeps busy from /proc/stat, not the load average
(which on some VMs sits at ~1 with idle CPUs and made auto pick one thread on an idle machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lstmctl.train import setup

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")

SPIN = "import time\nend = time.time() + 20\nwhile time.time() < end: pass\n"


def test_busy_cores_sees_processes_that_spin():
    cores = os.cpu_count() or 1
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(cores)]
    try:
        time.sleep(0.5)  # let them start spinning
        busy = setup.busy_cores(0.5)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    # every core spins (the test's own process sleeps meanwhile): close to all of them busy
    assert cores - 0.5 <= busy <= cores + 1e-6


def test_auto_threads_leaves_busy_cores_alone(monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(setup, "busy_cores", lambda sample_s=0.1: float(cores))
    assert setup.auto_threads(100_000) == 1  # every core busy: one thread
    monkeypatch.setattr(setup, "busy_cores", lambda sample_s=0.1: 0.0)
    assert setup.auto_threads(100_000) == min(cores, torch.get_num_threads())
    assert setup.auto_threads(5_000) == 1  # a small model: one thread whatever the machine


def test_busy_cores_falls_back_to_the_load_average(monkeypatch):
    real_open = open

    def no_proc_stat(path, *a, **k):
        if str(path) == "/proc/stat":
            raise OSError("no /proc here")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", no_proc_stat)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.25, 0.0, 0.0))
    assert setup.busy_cores(0.01) == 1.25
