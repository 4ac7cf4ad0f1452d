"""Seconds to load the real Fashion-MNIST files, and to train and evaluate the short run the tests make.

    python benchmarks/bench_mnist_load.py                 # medians of 3 repeats of each
    python benchmarks/bench_mnist_load.py --repeats 5 --out benchmarks/results/mnist_load.json
    python benchmarks/bench_mnist_load.py --skip-run      # the load alone (a few seconds)

Two timings, each the median (with min and max) of --repeats runs:
  load  lstmctl.data.mnist.build_fashion_mnist in this process: finding Debian's files
        (apt-get install dataset-fashion-mnist), decompressing and parsing the four IDX files,
        standardising, carving the 5,000 validation images.
  run   `lstmctl train` + `lstmctl eval` in subprocesses, the configuration of
        tests/test_data_mnist.py::test_real_fashion_mnist_row_lstm_beats_chance (subset 2000,
        lstm hidden 32, 2 epochs, batch 32, lr 0.01): start-up, loading, training, evaluation.
The test asserts what the run learns (accuracy > 0.5); how long it takes is this script's to say.
It prints the machine (cores, CPU model, torch, load average before and after) beside the figures.
Run nothing else on the machine meanwhile: the seconds are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from common import machine  # benchmarks/common.py

HERE = Path(__file__).resolve().parent
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")
RUN_CONFIG = {  # as in the test
    "name": "bench-mnist-load",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "fashion_mnist", "subset": 2000},
    "model": {"name": "lstm", "hidden_size": 32},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01},
}


def time_load() -> float:
    from lstmctl.data import mnist as mn

    t0 = time.perf_counter()
    b = mn.build_fashion_mnist(mn.MnistParams(), seed=0)
    seconds = time.perf_counter() - t0
    assert len(b.train) + len(b.val) == 60_000 and len(b.test) == 10_000
    return seconds


def lstmctl(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).with_name("lstmctl")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "lstmctl", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        sys.exit(f"lstmctl {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def time_run(folder: Path, i: int) -> tuple[float, float]:
    """(seconds of train + eval, test accuracy) of one short run in its own runs directory."""
    cfg = folder / "run.yaml"
    cfg.write_text(yaml.safe_dump(RUN_CONFIG, sort_keys=False))
    runs = folder / f"runs-{i}"
    t0 = time.perf_counter()
    lstmctl("train", str(cfg), "--quiet", "--runs-dir", str(runs), cwd=folder)
    result = json.loads(lstmctl("eval", "latest", "--json", "--runs-dir", str(runs), cwd=folder))
    return time.perf_counter() - t0, result["metrics"]["accuracy"]


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values), "all": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-run", action="store_true", help="time the load only")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    a = ap.parse_args()
    if not SYSTEM_FASHION.is_dir() and not os.environ.get("LSTMCTL_DATA_DIR"):
        sys.exit(f"Fashion-MNIST files absent ({SYSTEM_FASHION}): apt-get install dataset-fashion-mnist")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    res: dict = {"date": started, "repeats": a.repeats, "load": stats([time_load() for _ in range(a.repeats)])}
    if not a.skip_run:
        with tempfile.TemporaryDirectory(prefix="bench-mnist-load-") as tmp:
            runs = [time_run(Path(tmp), i) for i in range(a.repeats)]
        res["run"] = {**stats([s for s, _ in runs]), "accuracy": [acc for _, acc in runs], "config": RUN_CONFIG}
    res["machine"] = {**machine(), "load_avg_before": load_before, "load_avg_after": os.getloadavg()}
    m = res["machine"]
    print(f"{started}; {m['cores']} cores, {m['cpu']}; torch {m['torch']} ({m['torch_threads']} threads), "
          f"Python {m['python']}; load average {load_before[0]:.2f} before, {m['load_avg_after'][0]:.2f} after")
    for key, what in (("load", "load Fashion-MNIST (build_fashion_mnist)"), ("run", "train + eval, subset 2000, 2 epochs")):
        if key in res:
            r = res[key]
            print(f"{what}: median {r['median']:.2f} s (min {r['min']:.2f}, max {r['max']:.2f}; {r['n']} repeats)")
    if "run" in res:
        print(f"test accuracy of those runs: {', '.join(f'{x:.4f}' for x in res['run']['accuracy'])} (chance 0.1)")
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
