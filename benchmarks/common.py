"""What the benchmarks share: the machine they ran on (stored beside every number), and running the
lstmctl command line as a user would.

Imported by the scripts in this folder (run as `python benchmarks/<script>.py`, which puts this
folder on sys.path).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def machine() -> dict:
    """CPU model, cores, versions and the load average now (1, 5, 15 min)."""
    import torch  # here, not at the top: a script's own timing may start before torch is imported

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "load_avg": os.getloadavg()}


def lstmctl_cmd(*args: str) -> list[str]:
    """The installed `lstmctl` beside this Python, or `python -m lstmctl`."""
    exe = Path(sys.executable).with_name("lstmctl")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "lstmctl", *args]


def run_lstmctl(args: list[str]) -> str:
    """stdout of `lstmctl ARGS` run from the repository root; exits with its stderr if it fails."""
    proc = subprocess.run(lstmctl_cmd(*args), capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"lstmctl {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout
