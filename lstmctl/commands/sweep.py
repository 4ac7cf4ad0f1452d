"""`lstmctl sweep`: one run per combination of --grid values, then a table (and CSV) best first: ranked by
the monitored value (train.monitor) in its mode, highest first for a max-mode metric such as val_accuracy.

A sweep is `lstmctl tune` with the grid sampler and no pruner (lstmctl/search/): one code path. Each
axis is a categorical space of the values as written (each reaches the config as `--set KEY=VALUE`
does); the study, `sweep-<id>`, lives in the runs directory like any other (`lstmctl tune show
sweep-<id>` reads it). Every combination is validated before the first run starts; each run is an
ordinary run tagged in run.json with the sweep's id and the study and trial. A run that fails is
listed (last) and the sweep goes on; the command then exits 1.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime
from pathlib import Path

from rich.markup import escape

from lstmctl import config
from lstmctl.commands.output import ID, NUM, Col, fmt, print_json, print_table
from lstmctl.errors import RunFailed, UserError
from lstmctl.runs import write_text_atomic
from lstmctl.search import driver
from lstmctl.search.driver import Plan
from lstmctl.search.report import trial_row
from lstmctl.search.space import grid_spaces
from lstmctl.search.storage import journal_path, open_storage, require_optuna


SWEEP_COLUMNS = {"run": Col("run", 0, ID), "best": Col("best", 1, NUM), "best_epoch": Col("best_epoch", 3, NUM, "right"),
                 "monitor": Col("monitor", 4), "epochs_done": Col("epochs_done", 5, NUM, "right"), "mode": Col("mode", 6, NUM)}


def sweep_columns(row: dict) -> list[Col]:
    """The table's columns, for print_table: the run and its best value first; a grid axis (any other key) next,
    its values cut with an ellipsis if long; on a narrow terminal the rest is left out (the CSV has it all)."""
    return [SWEEP_COLUMNS.get(key, Col(key, 2, min=8)) for key in row]


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


def grid_axes(grid: list[str]) -> list[tuple[str, list[str]]]:
    """["a=1,2", "b=x,y"] -> [("a", ["1", "2"]), ("b", ["x", "y"])]."""
    axes: list[tuple[str, list[str]]] = []
    for g in grid:
        key, sep, values = g.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserError(f"bad --grid {g!r}: expected KEY=V1,V2,..., e.g. --grid model.hidden_size=16,32,64")
        vals = split_values(values)
        if any(v == "" for v in vals):
            raise UserError(f"bad --grid {g!r}: empty value in the list")
        if key.strip() in (k for k, _ in axes):
            raise UserError(f"--grid {key.strip()} is given twice; list all its values in one --grid")
        if len(set(vals)) != len(vals):
            raise UserError(f"bad --grid {g!r}: a value is listed twice")
        axes.append((key.strip(), vals))
    return axes


def grid_overrides(grid: list[str]) -> list[list[str]]:
    """["a=1,2", "b=x,y"] -> the --set lists of the four combinations."""
    axes = [[f"{key}={v}" for v in vals] for key, vals in grid_axes(grid)]
    return [list(combo) for combo in itertools.product(*axes)]


def rank(row: dict) -> tuple:
    """Best first by the monitored value in its mode (max: highest first); runs without a value last."""
    if row["best"] is None:
        return (True, 0.0)
    return (False, -row["best"] if row["mode"] == "max" else row["best"])


def new_study_name(runs_dir, sweep_id: str) -> str:
    """`sweep-<id>`, never one that exists (two sweeps started in the same second)."""
    for n in range(1, 1000):
        name = f"sweep-{sweep_id}" + ("" if n == 1 else f"-{n}")
        if not journal_path(runs_dir, name).exists():
            return name
    raise UserError(f"cannot find a free study name for sweep {sweep_id}")


def run_sweep(config_path: Path, grid: list[str], sets: list[str] | None, runs_dir=None, out_dir: Path = Path("."),
              quiet: bool = True) -> dict:
    """Train every combination; returns {"sweep": id, "study": name, "csv": path, "results": rows best first}."""
    if not grid:
        raise UserError("sweep needs at least one --grid KEY=V1,V2")
    axes = grid_axes(grid)
    sets = list(sets or [])
    for combo in grid_overrides(grid):
        config.load(config_path, sets + combo)  # all valid before any run starts
    optuna = require_optuna("lstmctl sweep")
    sweep_id = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    study = new_study_name(runs_dir, sweep_id)
    plan = Plan(Path(config_path), sets, grid_spaces(axes), study, sampler="grid", pruner="none", runs_dir=runs_dir,
                quiet=quiet, tags={"sweep": sweep_id})
    driver.prepare(plan)
    st = driver.open_study(optuna, open_storage(optuna, None, runs_dir, study), plan)
    driver.work(optuna, st, plan, plan.trials)
    trials = st.get_trials(deepcopy=False)
    results = []
    for t in trials:
        row = trial_row(t, set())
        results.append({"run": row["run"], **{key: t.params.get(key) for key, _ in axes}, "monitor": plan.monitor,
                        "mode": plan.mode, "best": row["value"] if row["state"] == "COMPLETE" else None,
                        "best_epoch": t.user_attrs.get("best_epoch"), "epochs_done": row["epochs"]})
    results.sort(key=rank)
    path = Path(out_dir) / f"sweep-{sweep_id}.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(results[0]))
    w.writeheader()
    w.writerows(results)
    write_text_atomic(path, buf.getvalue())
    failed = [trial_row(t, set()) for t in trials if t.state.name != "COMPLETE"]
    return {"sweep": sweep_id, "study": study, "csv": str(path), "results": results, "failed": failed}


def sweep(config_path: Path, grid: list[str], sets: list[str] | None = None, runs_dir=None, out_dir: Path = Path("."),
          json_out: bool = False) -> None:
    result = run_sweep(config_path, grid, sets, runs_dir, out_dir)
    failed = result.pop("failed")
    if json_out:
        print_json({**result, **({"failed": failed} if failed else {})})
    else:
        rows = result["results"]
        print_table(sweep_columns(rows[0]), [[escape(fmt(v)) for v in r.values()] for r in rows],
                    title=f"sweep {result['sweep']}: {len(rows)} runs, best first", more=f"{result['csv']} has every column")
        print(result["csv"])
    if failed:
        first = failed[0]
        raise RunFailed(f"sweep {result['sweep']}: {len(failed)} of {len(result['results'])} runs failed "
                        f"(first: {first.get('error') or first['state']}); the table lists them last")
