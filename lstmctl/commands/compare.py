"""`lstmctl compare`: overlay the loss curves of runs in one figure, list the config keys that differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from lstmctl import config
from lstmctl.commands.output import console, fmt, print_json, run_row
from lstmctl.errors import UserError
from lstmctl.plots import plot_compare
from lstmctl.runs import RunDir, find_run


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}: the keys `--set` and the differences table use."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def compare_runs(runs: list[RunDir], out: Path, figure_format: str = "png") -> dict[str, Any]:
    """The figure's path, the config keys whose values differ (one value per run) and each run's results."""
    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    if len({r.id for r in runs}) < len(runs):
        raise UserError("compare was given the same run twice")
    flats = []
    for r in runs:
        if not r.config_path.exists():
            raise UserError(f"run {r.id} is damaged: it has no config.yaml")
        flats.append(flatten(config.read_yaml(r.config_path)))
    keys = sorted(set().union(*flats))
    differ = {k: [f.get(k) for f in flats] for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1}
    rows = []
    for r in runs:
        row = run_row(r)
        rows.append({"id": r.id, "best_monitor": row.get("best_monitor"), "best_value": row.get("best_value"),
                     "epochs_done": row.get("epochs_done"), "metric": row.get("metric"), "metric_value": row.get("metric_value")})
    figure = plot_compare(runs, out, figure_format)
    return {"figure": str(figure), "differences": differ, "runs": rows}


def compare(refs: list[str], out: Path, figure_format: str = "png", runs_dir=None, json_out: bool = False) -> None:
    result = compare_runs([find_run(r, runs_dir) for r in refs], out, figure_format)
    if json_out:
        print_json(result)
        return
    table = Table(title="config keys that differ")
    table.add_column("key")
    for r in result["runs"]:
        table.add_column(r["id"], overflow="fold")
    for key, values in result["differences"].items():
        table.add_row(key, *[fmt(v) for v in values])
    table.add_section()
    table.add_row("epochs done", *[fmt(r["epochs_done"]) for r in result["runs"]])
    table.add_row("best loss", *[f"{fmt(r['best_value'])} ({r['best_monitor']})" for r in result["runs"]])
    table.add_row("eval", *[f"{r['metric']} {fmt(r['metric_value'])}" if r["metric"] else "—" for r in result["runs"]])
    console().print(table)
    print(result["figure"])
