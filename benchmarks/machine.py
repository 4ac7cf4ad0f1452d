"""What every benchmark prints and stores beside its numbers: the machine it ran on.

Imported by the scripts in this folder (run as `python benchmarks/<script>.py`, which puts this
folder on sys.path).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


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
