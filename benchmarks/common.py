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


def cut_before_test(name: str, folder: Path) -> tuple[Path, dict, int, int]:
    """Write the rows of configs/NAME.yaml's CSV that come before its real test block to FOLDER/NAME.csv,
    so that a recipe can be developed and compared without the test rows. The test block is the config's
    data.test_fraction of the rows (of the regular grid when data.missing fills gaps; of each series of a
    long table).
    Returns the CSV's path, the config's data section, and the row counts before and after the cut."""
    import pandas as pd
    import yaml

    data = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())["data"]
    table = pd.read_csv(REPO / "configs" / data["path"])
    series = [table] if "series_column" not in data else [g for _, g in table.groupby(data["series_column"], sort=False)]
    share = data.get("test_fraction", 0.2)  # the schema's default
    kept = []
    for rows in series:
        if data.get("missing"):  # gaps filled onto the regular grid: the test block is the grid's last 20%
            dates = pd.to_datetime(rows[data["date_column"]])
            step = dates.diff().median()
            grid = int((dates.iloc[-1] - dates.iloc[0]) / step) + 1
            cut = dates.iloc[0] + step * (grid - max(1, round(grid * share)))
            kept.append(rows[(dates < cut).to_numpy()])
        else:
            kept.append(rows.iloc[: len(rows) - max(1, round(len(rows) * share))])
    path = folder / f"{name}.csv"
    pd.concat(kept).to_csv(path, index=False)
    return path, data, len(table), sum(len(k) for k in kept)
