"""`lstmctl sweep`: one run per combination of --grid values, then a table (and CSV) best first: ranked by
the monitored value (train.monitor) in its mode, highest first for a max-mode metric such as val_accuracy.

Every combination is validated before the first run starts; each run is an ordinary `train` run
(commands.train.start_training) tagged with the sweep's id in run.json.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime
from pathlib import Path

from rich.table import Table

from lstmctl import config
from lstmctl.commands.output import best_mode, console, fmt, print_json
from lstmctl.commands.train import start_training
from lstmctl.errors import UserError
from lstmctl.runs import write_text_atomic


def split_values(text: str) -> list[str]:
    """Split `a,b,[1,2],{x: 1}` on the commas outside brackets and braces."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def grid_overrides(grid: list[str]) -> list[list[str]]:
    """["a=1,2", "b=x,y"] -> the --set lists of the four combinations."""
    axes = []
    for g in grid:
        key, sep, values = g.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserError(f"bad --grid {g!r}: expected KEY=V1,V2,..., e.g. --grid model.hidden_size=16,32,64")
        vals = split_values(values)
        if any(v == "" for v in vals):
            raise UserError(f"bad --grid {g!r}: empty value in the list")
        axes.append([f"{key.strip()}={v}" for v in vals])
    return [list(combo) for combo in itertools.product(*axes)]


def rank(row: dict) -> tuple:
    """Best first by the monitored value in its mode (max: highest first); runs without a value last."""
    if row["best"] is None:
        return (True, 0.0)
    return (False, -row["best"] if row["mode"] == "max" else row["best"])


def run_sweep(config_path: Path, grid: list[str], sets: list[str] | None, runs_dir=None, out_dir: Path = Path("."),
              quiet: bool = True) -> dict:
    """Train every combination; returns {"sweep": id, "csv": path, "results": rows best first}."""
    if not grid:
        raise UserError("sweep needs at least one --grid KEY=V1,V2")
    combos = grid_overrides(grid)
    cfgs = [(combo, config.load(config_path, list(sets or []) + combo)) for combo in combos]  # all valid before any runs
    sweep_id = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    results = []
    for combo, cfg in cfgs:
        run, summary = start_training(cfg, runs_dir, source=str(config_path), overrides=list(sets or []) + combo, quiet=quiet)
        run.update(sweep=sweep_id)
        best = summary["best"]
        results.append({"run": run.id, **{c.split("=", 1)[0]: c.split("=", 1)[1] for c in combo},
                        "monitor": best["monitor"], "mode": best_mode(best), "best": best["value"], "best_epoch": best["epoch"],
                        "epochs_done": summary["epochs_done"]})
    results.sort(key=rank)
    path = Path(out_dir) / f"sweep-{sweep_id}.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(results[0]))
    w.writeheader()
    w.writerows(results)
    write_text_atomic(path, buf.getvalue())
    return {"sweep": sweep_id, "csv": str(path), "results": results}


def sweep(config_path: Path, grid: list[str], sets: list[str] | None = None, runs_dir=None, out_dir: Path = Path("."),
          json_out: bool = False) -> None:
    result = run_sweep(config_path, grid, sets, runs_dir, out_dir)
    if json_out:
        print_json(result)
        return
    rows = result["results"]
    table = Table(title=f"sweep {result['sweep']}: {len(rows)} runs, best first")
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*[fmt(v) for v in r.values()])
    console().print(table)
    print(result["csv"])
