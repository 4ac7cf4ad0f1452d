"""Helpers for the robustness and resume tests: real subprocesses, waits, exact comparisons."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

# Everything that could make a resumed run drift: dropout between two layers (global torch RNG),
# shuffled mini-batches (5 steps an epoch), a validation split and a step schedule.
EXACT = {
    "name": "exact",
    "seed": 3,
    "device": "cpu",
    "data": {"name": "sine_cosine", "points": 400, "seq_len": 10},
    "model": {"name": "lstm", "hidden_size": 6, "num_layers": 2, "dropout": 0.3},
    "train": {
        "epochs": 8,
        "batch_size": 3,
        "lr": 0.01,
        "val_fraction": 0.2,
        "shuffle": True,
        "checkpoint_every_s": 0,
        "scheduler": {"name": "step", "step_size": 2, "gamma": 0.7},
    },
}


def write_cfg(path: Path, base: dict = EXACT, **train) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(base))
    cfg["train"].update(train)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def popen(*args, cwd=None, env=None) -> subprocess.Popen:
    """`python -m lstmctl ARGS` in the background; stdout/stderr go to files (no pipe can fill up)."""
    cwd = Path(cwd or os.getcwd())
    tag = f"{time.monotonic_ns()}"
    out = open(cwd / f".out-{tag}", "w+")
    err = open(cwd / f".err-{tag}", "w+")
    p = subprocess.Popen(
        [sys.executable, "-m", "lstmctl", *map(str, args)],
        stdout=out,
        stderr=err,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    p.out_file, p.err_file = out, err  # type: ignore[attr-defined]
    return p


def finish(p: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    rc = p.wait(timeout=timeout)
    p.out_file.seek(0)
    p.err_file.seek(0)
    return rc, p.out_file.read(), p.err_file.read()


def stderr_so_far(p: subprocess.Popen) -> str:
    return Path(p.err_file.name).read_text(errors="replace")


def only_run(runs_dir: Path, newest: bool = True) -> Path:
    runs = sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
    return runs[-1] if newest else runs[0]


def wait_until(cond, proc: subprocess.Popen | None = None, timeout: float = 60, poll: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited early ({proc.returncode}): {stderr_so_far(proc)}")
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def metrics_rows(run: Path) -> int:
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def wait_for_rows(runs_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> Path:
    """Wait until the (only) run in runs_dir has n rows in metrics.csv; returns the run directory."""
    found: list[Path] = []

    def ready():
        if not runs_dir.is_dir():
            return False
        dirs = [p for p in runs_dir.iterdir() if p.is_dir()]
        if dirs and metrics_rows(dirs[0]) >= n:
            found.append(dirs[0])
            return True
        return False

    wait_until(ready, proc, timeout)
    return found[0]


def run_info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def metrics_without_seconds(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(a: Path, b: Path) -> None:
    """Bit-for-bit equal model state dicts (and optimizer moments) of two last.pt files."""
    sa, sb = load_ckpt(a), load_ckpt(b)
    assert sa["epoch"] == sb["epoch"]
    assert sa["model"].keys() == sb["model"].keys()
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), f"{k} differs"
    assert_same_optimizer(sa["optimizer"], sb["optimizer"])


def assert_same_optimizer(a: dict, b: dict) -> None:
    """Two optimizer state dicts alike both ways: the same parameters with state, the same keys in each
    (a moment missing on either side fails), equal values (tensors bit for bit), equal param_groups."""
    assert a["state"].keys() == b["state"].keys(), f"optimizer state for parameters {sorted(a['state'])} vs {sorted(b['state'])}"
    for pid in a["state"]:
        sa, sb = a["state"][pid], b["state"][pid]
        assert sa.keys() == sb.keys(), f"optimizer {pid}: keys {sorted(sa)} vs {sorted(sb)}"
        for k in sa:
            va, vb = sa[k], sb[k]
            if isinstance(va, torch.Tensor) or isinstance(vb, torch.Tensor):
                same = isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor) and torch.equal(va, vb)
            else:
                same = va == vb
            assert same, f"optimizer {pid}.{k} differs"
    assert a["param_groups"] == b["param_groups"], "optimizer param_groups differ"


def assert_same_run(resumed: Path, reference: Path) -> None:
    assert_same_weights(resumed / "checkpoints" / "last.pt", reference / "checkpoints" / "last.pt")
    assert metrics_without_seconds(resumed) == metrics_without_seconds(reference)
