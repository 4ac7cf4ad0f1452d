"""What a search costs and saves: pruning, worker processes, and a trial against `lstmctl train`.

    python benchmarks/bench_tune.py                    # all three sections (~5 min on 2 cores)
    python benchmarks/bench_tune.py --only pruning     # or workers, overhead
    python benchmarks/bench_tune.py --out my.json

Sections (the real CLI; each search in its own runs directory, one thread per training process):
  (a) pruning: a 30-trial TPE search (train.lr log-uniform 1e-4..1e-1, model.hidden_size 4/8/16/32) on
      sine->cosine (60 epochs a trial, val_loss), with the median pruner and without. Reports the
      epochs trained in all and the best val_loss of each. Target: >= 40% fewer epochs, best within 10%.
  (b) workers: the same N equal trials (hidden 16, lr searched, no pruner) with --workers 1 and 2,
      each `lstmctl tune` a fresh process: wall time of the command, and the span from the first
      trial's start to the last one's end (each worker process first pays the interpreter's, torch's
      and Optuna's start-up). Target: 2 workers >= 1.6x on 2 cores.
  (c) overhead: `lstmctl train` against `lstmctl tune --trials 1` on a one-point space (the same config),
      each a fresh process, interleaved, medians; and the training loop alone (run.json started ->
      ended), where the per-epoch report to the study and the pruner's question are paid.
      Target: a trial <= 10% more wall time than the train.
Writes the numbers as JSON to --out (default benchmarks/results/tune.json, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

SIN2COS = {
    "name": "bench",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "sine_cosine", "t_end": 37.69911184307752, "points": 200, "train_fraction": 0.5},
    "model": {"name": "lstm", "hidden_size": 16},
    "train": {"epochs": 60, "batch_size": None, "lr": 0.01, "val_fraction": 0.2, "monitor": "val_loss", "threads": 1},
}
SPACE = {"train.lr": {"low": 1.0e-4, "high": 1.0e-1, "log": True}, "model.hidden_size": {"choices": [4, 8, 16, 32]}}


def lstmctl(*args: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    exe = Path(sys.executable).with_name("lstmctl")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "lstmctl", *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done


def write(folder: Path, cfg: dict, name: str) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def iso_seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def pruning(tmp: Path, trials: int) -> dict:
    cfg = write(tmp, {**SIN2COS, "search": SPACE}, "search.yaml")
    out = {}
    for pruner in ("none", "median"):
        runs = tmp / f"runs-{pruner}"
        wall, done = lstmctl("tune", str(cfg), "--trials", str(trials), "--pruner", pruner, "--runs-dir", str(runs), "--json")
        data = json.loads(done.stdout)
        epochs = sum(t["epochs"] or 0 for t in data["trials"])
        out[pruner] = {"wall_s": round(wall, 2), "epochs": epochs, "best_val_loss": data["best"]["value"],
                       "best_params": data["best"]["params"],
                       "pruned": sum(t["state"] == "PRUNED" for t in data["trials"])}
        print(f"  pruner {pruner:6s}: {epochs} epochs, best val_loss {data['best']['value']:.4g}, "
              f"{out[pruner]['pruned']} pruned, {wall:.1f} s", flush=True)
    saved = 1 - out["median"]["epochs"] / out["none"]["epochs"]
    ratio = out["median"]["best_val_loss"] / out["none"]["best_val_loss"]
    out["epochs_saved"] = round(saved, 3)
    out["best_ratio"] = round(ratio, 3)
    print(f"  pruning trains {saved:.0%} fewer epochs; best val_loss {ratio:.2f}x that of no pruning", flush=True)
    return out


def workers(tmp: Path, trials: int, epochs: int) -> dict:
    cfg = write(tmp, {**SIN2COS, "train": {**SIN2COS["train"], "epochs": epochs},
                      "search": {"train.lr": SPACE["train.lr"]}}, "workers.yaml")
    out = {}
    for k in (1, 2):
        runs = tmp / f"runs-w{k}"
        wall, done = lstmctl("tune", str(cfg), "--trials", str(trials), "--workers", str(k), "--pruner", "none",
                             "--sampler", "random", "--runs-dir", str(runs), "--json")
        infos = [json.loads((runs / t["run"] / "run.json").read_text()) for t in json.loads(done.stdout)["trials"]]
        span = iso_seconds(min(i["created"] for i in infos), max(i["ended"] for i in infos))  # first trial to last
        out[f"workers_{k}"] = {"wall_s": round(wall, 2), "trials_span_s": round(span, 2)}
        print(f"  --workers {k}: {trials} trials in {wall:.1f} s (first trial start to last trial end {span:.1f} s)", flush=True)
    out["speedup_wall"] = round(out["workers_1"]["wall_s"] / out["workers_2"]["wall_s"], 2)
    out["speedup_trials"] = round(out["workers_1"]["trials_span_s"] / out["workers_2"]["trials_span_s"], 2)
    print(f"  2 workers: {out['speedup_wall']:.2f}x the command's wall time, {out['speedup_trials']:.2f}x the trials' span", flush=True)
    return out


def overhead(tmp: Path, repeats: int, epochs: int) -> dict:
    base = {**SIN2COS, "train": {**SIN2COS["train"], "epochs": epochs}}
    train_cfg = write(tmp, base, "plain.yaml")
    tune_cfg = write(tmp, {**base, "search": {"train.lr": {"choices": [0.01]}}}, "one-point.yaml")
    walls: dict[str, list[float]] = {"train": [], "trial": []}
    loops: dict[str, list[float]] = {"train": [], "trial": []}
    for i in range(repeats):
        for kind in ("train", "trial"):
            runs = tmp / f"runs-o-{kind}-{i}"
            if kind == "train":
                wall, done = lstmctl("train", str(train_cfg), "--runs-dir", str(runs), "--json")
                run = json.loads(done.stdout)["run"]
            else:
                wall, done = lstmctl("tune", str(tune_cfg), "--trials", "1", "--study", f"o{i}", "--runs-dir", str(runs), "--json")
                run = json.loads(done.stdout)["trials"][0]["run"]
            info = json.loads((runs / run / "run.json").read_text())
            walls[kind].append(wall)
            loops[kind].append(iso_seconds(info["started"], info["ended"]))
    out = {k: {"wall_s": round(statistics.median(v), 3), "loop_s": round(statistics.median(loops[k]), 3)} for k, v in walls.items()}
    out["wall_overhead"] = round(out["trial"]["wall_s"] / out["train"]["wall_s"] - 1, 3)
    out["loop_overhead"] = round(out["trial"]["loop_s"] / out["train"]["loop_s"] - 1, 3)
    print(f"  train {out['train']['wall_s']:.2f} s (loop {out['train']['loop_s']:.2f} s), trial {out['trial']['wall_s']:.2f} s "
          f"(loop {out['trial']['loop_s']:.2f} s): +{out['wall_overhead']:.1%} wall, +{out['loop_overhead']:.1%} loop", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["pruning", "workers", "overhead"])
    ap.add_argument("--trials", type=int, default=30, help="trials of the pruning search")
    ap.add_argument("--worker-trials", type=int, default=16)
    ap.add_argument("--worker-epochs", type=int, default=1200, help="epochs of each worker trial (~3 s)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--overhead-epochs", type=int, default=400)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "tune.json")
    args = ap.parse_args()
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        tmp = Path(tmp)
        if args.only in (None, "pruning"):
            print("(a) pruning", flush=True)
            result["pruning"] = pruning(tmp, args.trials)
        if args.only in (None, "workers"):
            print("(b) workers", flush=True)
            result["workers"] = workers(tmp, args.worker_trials, args.worker_epochs)
        if args.only in (None, "overhead"):
            print("(c) overhead", flush=True)
            result["overhead"] = overhead(tmp, args.repeats, args.overhead_epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
