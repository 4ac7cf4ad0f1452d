"""Output shared by the commands: the table console, number formatting, JSON, the end of a training.

Conventions: tables and results for people go to stdout through `console()`, --json prints one JSON
document on stdout, progress and notes go to stderr (`say`).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from lstmctl.errors import UserError
from lstmctl.runs import RunDir

HEADLINE = {"classification": "accuracy", "classification_step": "accuracy"}  # regression: mse


def headline_key(task: str | None) -> str:
    """The metric a result is judged by: test accuracy for classification, test mse otherwise."""
    return HEADLINE.get(task or "", "mse")


def console() -> Console:
    """stdout for tables: the terminal's width, or wide enough not to fold when piped."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def print_json(data: Any) -> None:
    print(json.dumps(data, default=str))


def say(text: str) -> None:
    """A line for people on stderr (notes, warnings, progress), flushed at once."""
    print(text, file=sys.stderr, flush=True)


def training_done(run: RunDir, summary: dict | None, *, json_out: bool, message: str | None = None) -> None:
    """How train and resume end: JSON, or the "finished ..." line on stderr and where the run is on stdout.

    `summary` None (a resume with nothing to train) prints `message` in place of the finished line.
    """
    if json_out:
        print_json({"run": run.id, "run_dir": str(run.path), **({} if message is None else {"message": message}), **(summary or {})})
        return
    if summary is None:
        say(message or "")
    else:
        say(finished_line(run, summary))
    print(f"run id:  {run.id}")
    print(f"run dir: {run.path}")


def finished_line(run: RunDir, summary: dict) -> str:
    """"finished RUN: N epochs (why), best MONITOR VALUE at epoch E": how a training ends, for people."""
    best = summary["best"]
    best_txt = f"best {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}" if best["value"] is not None else "no finite loss"
    return f"finished {run.id}: {summary['epochs_done']} epochs ({summary['stop_reason']}), {best_txt}"


# ---------------------------------------------------------------- one run, summed up (runs, compare)


def read_eval(run: RunDir) -> dict | None:
    try:
        return json.loads(run.eval_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def headline(run: RunDir, task: str | None) -> tuple[str, float] | None:
    """The metric a table shows for a run: (e.g. "test mse", value) from its eval.json, if any."""
    ev = read_eval(run)
    if not ev or not isinstance(ev.get("metrics"), dict):
        return None
    key = headline_key(task or ev.get("task", ""))
    value = ev["metrics"].get(key)
    return (f"{ev.get('split', 'test')} {key}", value) if isinstance(value, (int, float)) else None


def _duration(info: dict) -> float | None:
    try:
        start = datetime.fromisoformat(info["started"])
        end = datetime.fromisoformat(info["ended"]) if info.get("ended") else None
    except (KeyError, TypeError, ValueError):
        return None
    if end is None:
        return None
    return round((end - start).total_seconds(), 3)


def run_row(run: RunDir) -> dict[str, Any]:
    """One line of `lstmctl runs`; a damaged directory is a row with status 'damaged', not a crash."""
    try:
        info = run.info()
        if not isinstance(info, dict):
            raise UserError("run.json is not an object")
    except UserError as e:
        return {"id": run.id, "kind": "run", "status": "damaged", "problem": str(e)}
    best = info.get("best") if isinstance(info.get("best"), dict) else {}
    head = headline(run, info.get("task"))
    return {
        "id": run.id,
        "kind": "run",
        "group": info.get("group"),
        "seed": info.get("seed"),
        "name": info.get("name"),
        "dataset": info.get("dataset"),
        "model": info.get("model"),
        "status": run.status(info),
        "epochs_done": info.get("epochs_done"),
        "epochs": info.get("epochs"),
        "best_monitor": best.get("monitor"),
        "best_mode": best_mode(best),
        "best_value": best.get("value"),
        "best_epoch": best.get("epoch"),
        "metric": head[0] if head else None,
        "metric_value": head[1] if head else None,
        "created": info.get("created"),
        "duration_s": _duration(info),
        "sweep": info.get("sweep"),
    }


def best_mode(best: dict) -> str | None:
    """run.json best's mode: "min" or "max"; runs written before monitors had modes watched a loss (min)."""
    if not best.get("monitor"):
        return None
    return best.get("mode") if best.get("mode") in ("min", "max") else "min"


def monitor_cell(row: dict) -> str:
    """The monitored metric and which way is better, e.g. "val_accuracy (max)"."""
    return f"{row['best_monitor']} ({row['best_mode']})" if row.get("best_monitor") else "—"


def mean_std(s: dict | None, digits: int = 4) -> str:
    """A summarize() result as "mean ± std" ("mean" alone for one value, "—" for none)."""
    if not s or s.get("mean") is None:
        return "—"
    return fmt(s["mean"], digits) + ("" if s.get("std") is None else f" ± {fmt(s['std'], 2)}")


def interval(ci: list | None, digits: int = 4) -> str:
    return "—" if not ci else f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def stats_table(metrics: dict[str, dict], title: str | None = None, label: str = "metric") -> Table:
    """One row per aggregated metric: mean, std (ddof=1), the 95% interval of the mean (Student's t), n."""
    table = Table(title=title)
    table.add_column(label)
    for col in ("mean", "std", "95% interval", "n"):
        table.add_column(col, justify="right")
    for name, s in metrics.items():
        table.add_row(name, fmt(s["mean"], 6), fmt(s["std"], 3), interval(s["ci95"]), str(s["n"]))
    return table
