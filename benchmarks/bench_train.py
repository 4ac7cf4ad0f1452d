"""How long a user waits: lstmctl against the plain PyTorch loop it replaces, and CLI start-up.

    python benchmarks/bench_train.py                      # sin2cos + --help, 5 repeats (~1-2 min on 2 cores)
    python benchmarks/bench_train.py --repeats 9 --out my.json
    python benchmarks/bench_train.py --threads            # + 1 vs all threads per step (bench_threads.py)
    python benchmarks/bench_train.py --fashion            # + Fashion-MNIST samples/s and time to 0.90 (long)
    python benchmarks/bench_train.py --cells              # + hand-built cell vs nn.LSTM (benchmarks/bench_cells.py)

Sections (medians over --repeats runs, each in a fresh process unless noted):
  (a) sine->cosine: `lstmctl train configs/sin2cos.yaml` (the real CLI in a subprocess, progress output,
      metrics.csv and checkpoints on) against benchmarks/plain_sin2cos.py (same model, data, seed and stop
      rule) run as a subprocess (interpreter and torch import counted in both: default threads, and one
      thread like lstmctl's auto choice), and both loops in this process on one thread, interleaved (the
      loop alone: lstmctl's per-epoch overhead and its fixed end-of-run writes). `loop` for lstmctl is run.json's started -> ended, which includes the
      per-epoch metrics rows, progress lines and the final checkpoints.
  (b) Fashion-MNIST row-LSTM (optional, configs/fashion_mnist.yaml): samples/s and time to 0.90 test accuracy.
  (c) hand-built LSTM vs nn.LSTM (optional): runs benchmarks/bench_cells.py.
  (d) `lstmctl --help` start-up time (target < 0.3 s).
Writes everything as JSON to --out (default benchmarks/results/train.json, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import machine  # benchmarks/common.py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


def median(xs):
    return statistics.median(xs) if xs else None


def lstmctl_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("lstmctl")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "lstmctl", *args]


def iso_seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def run_lstmctl_train(config: Path, sets: list[str], runs: Path) -> dict:
    """One `lstmctl train` in a subprocess: wall time of the command, loop time and epochs from run.json."""
    cmd = lstmctl_cmd("train", str(config), "--runs-dir", str(runs), "--json")
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"lstmctl train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run_id = json.loads(proc.stdout)["run"]
    info = json.loads((runs / run_id / "run.json").read_text())
    rows = (runs / run_id / "metrics.csv").read_text().splitlines()[1:]
    shutil.rmtree(runs / run_id)  # keep the temp dir small
    return {
        "wall_s": wall,
        "loop_s": iso_seconds(info["started"], info["ended"]),
        "setup_s": iso_seconds(info["created"], info["started"]),
        "epochs": info["epochs_done"],
        "epoch_s_sum": sum(float(r.rsplit(",", 1)[1]) for r in rows),
        "final_loss": info["final"]["train_loss"],
        "threads": info.get("threads"),
    }


def run_plain_subprocess(extra: list[str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / "plain_sin2cos.py"), "--json", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"plain_sin2cos.py failed:\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "loop_s": r["loop_s"], "epochs": r["epochs"], "final_loss": r["final_loss"], "threads": r["threads"]}


def bench_inprocess(repeats: int, tmp: Path) -> dict:
    """The loop alone, both in this process on one thread, interleaved: the overhead lstmctl's loop adds.

    lstmctl here is commands.train.start_training (what `lstmctl train` calls) with progress lines, metrics.csv
    and checkpoints on; `loop_s` is run.json's started -> ended, `epochs_s` the sum of metrics.csv's
    per-epoch seconds, `fixed_s` the rest (final checkpoint and run.json writes, fsync'd).
    """
    import contextlib
    import io

    import torch

    import plain_sin2cos
    from lstmctl import config
    from lstmctl.commands.train import start_training

    cfg = config.load(REPO / "configs" / "sin2cos.yaml", ["train.threads=1"])
    saved = torch.get_num_threads()
    lc, pl = [], []
    try:
        for _ in range(repeats):
            c0 = time.process_time()
            pl.append(plain_sin2cos.train(threads=1))
            pl[-1]["cpu_s"] = time.process_time() - c0  # CPU time: what a busy neighbour does not inflate
            c0 = time.process_time()
            with contextlib.redirect_stderr(io.StringIO()):
                run, summary = start_training(cfg, tmp / "inproc")
            cpu = time.process_time() - c0
            info = json.loads(run.run_json.read_text())
            rows = run.metrics_csv.read_text().splitlines()[1:]
            loop = iso_seconds(info["started"], info["ended"])
            epochs_s = sum(float(r.rsplit(",", 1)[1]) for r in rows)
            lc.append({"loop_s": loop, "epochs_s": epochs_s, "fixed_s": loop - epochs_s, "epochs": summary["epochs_done"], "cpu_s": cpu})
            shutil.rmtree(run.path)
    finally:
        torch.set_num_threads(saved)
    out = {
        "lstmctl": {k: median([x[k] for x in lc]) for k in lc[0]},
        "plain": {"loop_s": median([x["loop_s"] for x in pl]), "epochs": pl[0]["epochs"], "cpu_s": median([x["cpu_s"] for x in pl])},
        "raw": {"lstmctl": lc, "plain": pl},
    }
    out["ratios"] = {
        "loop": out["lstmctl"]["loop_s"] / out["plain"]["loop_s"],
        "per_epoch": (out["lstmctl"]["epochs_s"] / out["lstmctl"]["epochs"]) / (out["plain"]["loop_s"] / out["plain"]["epochs"]),
        "cpu_whole_call": out["lstmctl"]["cpu_s"] / out["plain"]["cpu_s"],
    }
    return out


def summarize(samples: list[dict]) -> dict:
    keys = [k for k, v in samples[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: median([s[k] for s in samples]) for k in keys}
    out["runs"] = len(samples)
    return out


def bench_sin2cos(repeats: int, tmp: Path) -> dict:
    cfg = REPO / "configs" / "sin2cos.yaml"
    res: dict[str, list[dict]] = {"lstmctl": [], "plain_subprocess": [], "plain_subprocess_1thread": []}
    for i in range(repeats):  # interleaved, so a noisy neighbour hurts every variant alike
        res["lstmctl"].append(run_lstmctl_train(cfg, [], tmp / "runs"))
        res["plain_subprocess"].append(run_plain_subprocess([]))
        res["plain_subprocess_1thread"].append(run_plain_subprocess(["--threads", "1"]))
        print(f"  sin2cos repeat {i + 1}/{repeats} done", file=sys.stderr)
    out = {k: summarize(v) for k, v in res.items()}
    out["raw"] = res
    lc, ps, p1 = out["lstmctl"], out["plain_subprocess"], out["plain_subprocess_1thread"]
    out["ratios"] = {
        "wall_lstmctl_over_plain": lc["wall_s"] / ps["wall_s"],
        "loop_lstmctl_over_plain": lc["loop_s"] / ps["loop_s"],
        "wall_lstmctl_over_plain_1thread": lc["wall_s"] / p1["wall_s"],
        "loop_lstmctl_over_plain_1thread": lc["loop_s"] / p1["loop_s"],
    }
    return out


def bench_threads(repeats: int) -> dict:
    """train.threads: 1 vs all threads per step at a few sizes (benchmarks/bench_threads.py)."""
    out = Path(tempfile.mkdtemp()) / "threads.json"
    proc = subprocess.run([sys.executable, str(HERE / "bench_threads.py"), "--repeats", str(repeats), "--out", str(out)],
                          capture_output=True, text=True)
    print(proc.stdout, file=sys.stderr)
    return json.loads(out.read_text()) if proc.returncode == 0 else {"failed": proc.stderr[-2000:]}


def bench_help(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(lstmctl_cmd("--help"), capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return {"median_s": median(times), "min_s": min(times), "runs": repeats, "target_s": 0.3}


def bench_fashion(repeats: int, tmp: Path) -> dict | None:
    cfg = REPO / "configs" / "fashion_mnist.yaml"
    if not cfg.exists():
        return {"skipped": "configs/fashion_mnist.yaml does not exist"}
    samples = []
    for _ in range(repeats):
        cmd = lstmctl_cmd("train", str(cfg), "--runs-dir", str(tmp / "runs"), "--json")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"skipped": f"lstmctl train {cfg.name} failed: {proc.stderr.strip().splitlines()[-1:]}"}
        run = tmp / "runs" / json.loads(proc.stdout)["run"]
        info = json.loads((run / "run.json").read_text())
        rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:]]
        ev = subprocess.run(lstmctl_cmd("eval", run.name, "--runs-dir", str(tmp / "runs"), "--json"), capture_output=True, text=True)
        acc = json.loads(ev.stdout)["metrics"].get("accuracy") if ev.returncode == 0 else None
        n_train = _train_size(cfg)
        samples.append({"wall_s": wall, "loop_s": iso_seconds(info["started"], info["ended"]), "epochs": len(rows),
                        "epoch_s": [float(r[-1]) for r in rows], "test_accuracy": acc, "n_train": n_train})
    s = samples[0]
    res = {"wall_s": median([x["wall_s"] for x in samples]), "loop_s": median([x["loop_s"] for x in samples]),
           "epochs": s["epochs"], "test_accuracy": s["test_accuracy"], "raw": samples}
    res["samples_per_s"] = s["n_train"] * s["epochs"] / res["loop_s"]
    res["median_epoch_s"] = median(s["epoch_s"])
    acc = s["test_accuracy"]
    # metrics.csv has no per-epoch accuracy: the whole run is an upper bound on the time to 0.90
    res["time_to_0.90_s_upper_bound"] = res["wall_s"] if acc is not None and acc >= 0.90 else None
    return res


def _train_size(cfg_path: Path) -> int:
    from lstmctl import config
    from lstmctl.session import build_dataset

    return len(build_dataset(config.load(cfg_path)).train)


def bench_cells() -> dict:
    script = HERE / "bench_cells.py"
    if not script.exists():
        return {"skipped": "benchmarks/bench_cells.py does not exist"}
    out = Path(tempfile.mkdtemp()) / "cells.json"
    proc = subprocess.run([sys.executable, str(script), "--out", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"skipped": f"bench_cells.py failed: {proc.stderr.strip().splitlines()[-1:]}"}
    print(proc.stdout)
    return json.loads(out.read_text()) if out.exists() else {"stdout": proc.stdout}


def print_table(res: dict) -> None:
    s = res.get("sin2cos")
    if s:
        print("\n(a) sine->cosine, configs/sin2cos.yaml (16-unit LSTM, whole split per step, stop at loss 1e-4)")
        print(f"{'variant':34} {'wall s':>8} {'loop s':>8} {'epochs':>7} {'threads':>7}")
        names = {"lstmctl": "lstmctl train (subprocess)", "plain_subprocess": "plain loop, script (default threads)",
                 "plain_subprocess_1thread": "plain loop, script, 1 thread"}
        for k, label in names.items():
            r = s[k]
            wall = f"{r['wall_s']:8.2f}" if "wall_s" in r else f"{'-':>8}"
            print(f"{label:34} {wall} {r['loop_s']:8.3f} {r['epochs']:7.0f} {r['threads']:7.0f}")
        for k, v in s["ratios"].items():
            print(f"  {k}: {v:.3f}")
    ip = res.get("sin2cos_inprocess")
    if ip:
        lc, pl = ip["lstmctl"], ip["plain"]
        print("\n(a) the loop alone, in-process, 1 thread, interleaved (medians)")
        print(f"  plain loop {pl['loop_s']:.3f} s for {pl['epochs']} epochs ({pl['loop_s'] / pl['epochs'] * 1e6:.0f} us/epoch)")
        print(f"  lstmctl    {lc['loop_s']:.3f} s = epochs {lc['epochs_s']:.3f} s ({lc['epochs_s'] / lc['epochs'] * 1e6:.0f} us/epoch)"
              f" + final writes {lc['fixed_s'] * 1000:.0f} ms")
        print(f"  ratio lstmctl/plain: whole loop {ip['ratios']['loop']:.3f}, per epoch {ip['ratios']['per_epoch']:.3f} (wall)")
        print(f"  CPU seconds of the whole call (data, model, run dir, loop, writes): plain {pl['cpu_s']:.3f},"
              f" lstmctl {lc['cpu_s']:.3f}, ratio {ip['ratios']['cpu_whole_call']:.3f}")
    t = res.get("threads")
    if t and "rows" in t:
        print("\ntrain.threads: ms per training step (forward+backward+Adam), medians")
        for r in t["rows"]:
            print(f"  {r['case']:28} {r['params']:8d} params  " + "  ".join(f"{k} thr {v:8.2f}" for k, v in r["step_ms"].items())
                  + f"  best {r['best_threads']}")
    f = res.get("fashion")
    if f:
        print("\n(b) Fashion-MNIST:", json.dumps({k: v for k, v in f.items() if k != "raw"}))
    h = res.get("help")
    if h:
        print(f"\n(d) lstmctl --help: median {h['median_s'] * 1000:.0f} ms, min {h['min_s'] * 1000:.0f} ms over {h['runs']} (target < 300 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description="lstmctl vs a plain PyTorch loop; CLI start-up.")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train.json")
    ap.add_argument("--threads", action="store_true", help="also time 1 vs all threads per step at a few sizes")
    ap.add_argument("--fashion", action="store_true", help="also run configs/fashion_mnist.yaml (long)")
    ap.add_argument("--cells", action="store_true", help="also run benchmarks/bench_cells.py")
    ap.add_argument("--skip-sin2cos", action="store_true")
    a = ap.parse_args()
    res: dict = {"machine": machine(), "repeats": a.repeats, "date": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res["help"] = bench_help(max(10, a.repeats))
        if not a.skip_sin2cos:
            res["sin2cos_inprocess"] = bench_inprocess(max(a.repeats, 7), tmp)
            res["sin2cos"] = bench_sin2cos(a.repeats, tmp)
        if a.threads:
            res["threads"] = bench_threads(a.repeats)
        if a.fashion:
            res["fashion"] = bench_fashion(1, tmp)
        if a.cells:
            res["cells"] = bench_cells()
    res["machine"]["load_avg_at_end"] = os.getloadavg()
    print_table(res)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
