"""Fashion-MNIST, honestly: configs/fashion_mnist.yaml under 3 seeds, selected on validation, tested once.

    python benchmarks/bench_fashion.py                       # seeds 0,1,2 (about 15 minutes on 2 cores)
    python benchmarks/bench_fashion.py --seeds 0,1,2,3,4 --out benchmarks/results/fashion.json
    python benchmarks/bench_fashion.py --set train.epochs=2 --set data.subset=2000   # a quick dry run
    python benchmarks/bench_fashion.py --overhead           # the validation pass's share of an epoch

It runs `lstmctl train configs/fashion_mnist.yaml --seeds ...` (one group, sequential; or one
`--set seed=N` run per seed where `--seeds` does not exist), then `lstmctl eval` on each run: the
test split is read once per run, by eval, after training has selected its best epoch on the
validation split (train.monitor: val_accuracy over the 5,000 images carved from the training set).
It prints a markdown table per seed (selected epoch, validation accuracy there, test accuracy, macro
F1, training seconds, median seconds per epoch) with the mean and the sample standard deviation
(n - 1), the machine (cores, CPU model, load average before and after) and the date, and writes the
same as JSON (--out). Run nothing else on the machine meanwhile: the seconds are the point.

--overhead measures what validating every epoch costs: --overhead-pairs (default 3) short runs of
the config (--overhead-epochs, default 3) in this process, with a timer around the trainer's
validation pass and around each whole epoch; the median of validation / epoch is the overhead.
(Whole runs with and without validation differ by more than the effect from run to run here.)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import REPO, machine, run_lstmctl  # benchmarks/common.py

HERE = Path(__file__).resolve().parent
CONFIG = REPO / "configs" / "fashion_mnist.yaml"


def has_seeds_option() -> bool:
    return "--seeds" in run_lstmctl(["train", "--help"])


def iso_seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def train(config: Path, seeds: list[int], sets: list[str], runs: Path) -> tuple[str | None, list[str], float]:
    """(group id or None, run ids, wall seconds of the whole training)."""
    common = ["--runs-dir", str(runs), "--quiet", "--json", *[x for s in sets for x in ("--set", s)]]
    t0 = time.perf_counter()
    if has_seeds_option():
        out = json.loads(run_lstmctl(["train", str(config), "--seeds", ",".join(map(str, seeds)), *common]))
        return out["group"], list(out["runs"]), time.perf_counter() - t0
    ids = [json.loads(run_lstmctl(["train", str(config), "--set", f"seed={s}", *common]))["run"] for s in seeds]
    return None, ids, time.perf_counter() - t0


def describe(runs: Path, run_id: str) -> dict:
    """One run: its seed, selected epoch, validation accuracy there, training seconds, then eval on test."""
    d = runs / run_id
    info = json.loads((d / "run.json").read_text())
    cfg_seed = None
    for line in (d / "config.yaml").read_text().splitlines():
        if line.startswith("seed:"):
            cfg_seed = int(line.split(":", 1)[1])
    with open(d / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = info.get("best") or {}
    at = next((r for r in rows if r.get("epoch") == str(best.get("epoch"))), {})
    seconds = [float(r["seconds"]) for r in rows if r.get("seconds")]
    ev = json.loads(run_lstmctl(["eval", run_id, "--runs-dir", str(runs), "--json"]))["metrics"]
    return {
        "run": run_id,
        "seed": cfg_seed,
        "epochs": len(rows),
        "best_epoch": best.get("epoch"),
        "monitor": best.get("monitor"),
        "val_accuracy": float(at["val_accuracy"]) if at.get("val_accuracy") else None,
        "test_accuracy": ev.get("accuracy"),
        "test_macro_f1": ev.get("macro_f1"),
        "train_s": iso_seconds(info["started"], info["ended"]) if info.get("started") and info.get("ended") else None,
        "epoch_s_sum": sum(seconds),
        "epoch_s_median": statistics.median(seconds) if seconds else None,
    }


def summary(values: list[float]) -> dict:
    vals = [v for v in values if v is not None]
    return {"mean": statistics.fmean(vals) if vals else None, "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals)}


def fmt(v, digits=4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def table(rows: list[dict], agg: dict) -> str:
    lines = ["| seed | run | selected epoch | val accuracy there | test accuracy | test macro F1 | training s | median s/epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | `{r['run']}` | {r['best_epoch']} of {r['epochs']} | {fmt(r['val_accuracy'])} | "
                     f"{fmt(r['test_accuracy'])} | {fmt(r['test_macro_f1'])} | {fmt(r['train_s'], 0)} | {fmt(r['epoch_s_median'], 2)} |")

    def ms(key, digits=4):
        a = agg[key]
        return f"{fmt(a['mean'], digits)} ± {fmt(a['std'], digits)}"

    lines.append(f"| mean ± std | n = {agg['test_accuracy']['n']} | | {ms('val_accuracy')} | **{ms('test_accuracy')}** | "
                 f"{ms('test_macro_f1')} | {ms('train_s', 0)} | {ms('epoch_s_median', 2)} |")
    return "\n".join(lines)


def overhead(config: Path, sets: list[str], runs: Path, epochs: int, pairs: int) -> dict:
    """The validation pass's share of an epoch, timed inside the real training loop.

    Comparing whole runs with and without validation cannot resolve a few percent here: epochs of
    separate runs vary by +-10% on a shared 2-core VM. So the trainer runs in this process (the real
    `lstmctl train` command through Typer's runner) with a timer around Trainer._validate and around
    Trainer._run_epoch (which includes the validation); `pairs` runs of `epochs` epochs each.
    """
    from typer.testing import CliRunner

    from lstmctl.cli import app
    from lstmctl.train import loop

    val_s: list[float] = []
    epoch_s: list[float] = []

    def timer(fn, into):
        def wrapped(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - t0)
        return wrapped

    loop.Trainer._validate = timer(loop.Trainer._validate, val_s)
    loop.Trainer._run_epoch = timer(loop.Trainer._run_epoch, epoch_s)
    for _ in range(pairs):
        args = ["train", str(config), "--runs-dir", str(runs), "--quiet", "--set", f"train.epochs={epochs}",
                *[x for s in sets for x in ("--set", s)]]
        res = CliRunner().invoke(app, args)
        if res.exit_code != 0:
            sys.exit(f"lstmctl {' '.join(args)} failed (exit {res.exit_code}): {res.output[-2000:]}")
    share = [v / e for v, e in zip(val_s, epoch_s)]
    return {"epochs_timed": len(epoch_s), "median_validation_s": statistics.median(val_s),
            "median_epoch_s": statistics.median(epoch_s), "validation_s": val_s, "epoch_s": epoch_s,
            "overhead": statistics.median(share)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default 0,1,2)")
    ap.add_argument("--set", action="append", default=[], help="config override passed to train (repeatable)")
    ap.add_argument("--runs-dir", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "fashion.json")
    ap.add_argument("--overhead", action="store_true", help="measure the validation overhead per epoch instead")
    ap.add_argument("--overhead-epochs", type=int, default=3)
    ap.add_argument("--overhead-pairs", type=int, default=3)
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = a.runs_dir or Path(tempfile.mkdtemp(prefix="bench-fashion-"))
    if a.overhead:
        load_before = os.getloadavg()
        res = overhead(a.config, a.set, runs, a.overhead_epochs, a.overhead_pairs)
        res.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   machine={**machine(), "load_avg_before": load_before, "load_avg_after": os.getloadavg()})
        print(f"{a.config.name}: validation {res['median_validation_s']:.3f} s of a {res['median_epoch_s']:.2f} s epoch "
              f"(medians over {res['epochs_timed']} epochs): overhead {100 * res['overhead']:.1f}% of the epoch; "
              f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
        out = a.out.with_name(a.out.stem + "-overhead.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")
        return
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    group, ids, wall = train(a.config, seeds, a.set, runs)
    load_after = os.getloadavg()
    rows = [describe(runs, i) for i in ids]
    agg = {k: summary([r[k] for r in rows]) for k in ("val_accuracy", "test_accuracy", "test_macro_f1", "train_s", "epoch_s_median")}
    group_eval = json.loads(run_lstmctl(["eval", group, "--runs-dir", str(runs), "--json"])) if group else None
    res = {"date": started, "machine": {**machine(), "load_avg_before": load_before, "load_avg_after_training": load_after},
           "config": str(a.config), "sets": a.set, "seeds": seeds, "group": group, "runs_dir": str(runs),
           "wall_s_all_seeds": wall, "runs": rows, "summary": agg, "group_eval": group_eval}
    m = res["machine"]
    print(f"{a.config.name} {' '.join(a.set)}; {started}; {m['cores']} cores, {m['cpu']}, torch {m['torch']}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after training (1 min)")
    print(table(rows, agg))
    print("std: sample standard deviation (n - 1); training s: run.json started -> ended (data, epochs, validation, checkpoints)")
    if group_eval:
        acc = group_eval.get("metrics", {}).get("accuracy")
        print(f"lstmctl eval {group}: accuracy {json.dumps(acc)}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
