"""Working with many runs: list, show, compare, sweep. Reads run directories only."""

from __future__ import annotations

import csv
import fnmatch
import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from lstmctl.errors import UserError
from lstmctl.runs import RunDir, list_runs

HEADLINE = {"classification": "accuracy", "classification_step": "accuracy"}  # regression: mse


def _duration(info: dict) -> float | None:
    try:
        start = datetime.fromisoformat(info["started"])
        end = datetime.fromisoformat(info["ended"]) if info.get("ended") else None
    except (KeyError, TypeError, ValueError):
        return None
    if end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _eval(run: RunDir) -> dict | None:
    try:
        return json.loads(run.eval_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def headline(run: RunDir, task: str | None) -> tuple[str, float] | None:
    ev = _eval(run)
    if not ev or not isinstance(ev.get("metrics"), dict):
        return None
    key = HEADLINE.get(task or ev.get("task", ""), "mse")
    value = ev["metrics"].get(key)
    return (f"{ev.get('split', 'test')} {key}", value) if isinstance(value, (int, float)) else None


def run_row(run: RunDir) -> dict[str, Any]:
    """One line of `lstmctl runs`; a damaged directory is a row with status 'damaged', not a crash."""
    try:
        info = run.info()
        if not isinstance(info, dict):
            raise UserError("run.json is not an object")
    except UserError as e:
        return {"id": run.id, "status": "damaged", "problem": str(e)}
    best = info.get("best") or {}
    head = headline(run, info.get("task"))
    return {
        "id": run.id,
        "name": info.get("name"),
        "dataset": info.get("dataset"),
        "model": info.get("model"),
        "status": run.status(info),
        "epochs_done": info.get("epochs_done"),
        "epochs": info.get("epochs"),
        "best_monitor": best.get("monitor"),
        "best_value": best.get("value"),
        "metric": head[0] if head else None,
        "metric_value": head[1] if head else None,
        "created": info.get("created"),
        "duration_s": _duration(info),
        "sweep": info.get("sweep"),
    }


def runs_table(runs_dir=None, status: str | None = None, name: str | None = None, limit: int | None = None) -> list[dict]:
    rows = []
    for run in list_runs(runs_dir):
        row = run_row(run)
        if status and row["status"] != status:
            continue
        if name and not fnmatch.fnmatchcase(row.get("name") or "", name if any(c in name for c in "*?[") else f"*{name}*"):
            continue
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    return rows


def show(run: RunDir) -> dict[str, Any]:
    from lstmctl import config

    info = run.info()
    metrics = run.read_metrics()
    summary: dict[str, Any] = {"epochs": len(metrics)}
    for key in ("train_loss", "val_loss"):
        values = [r[key] for r in metrics if isinstance(r.get(key), (int, float))]
        if values:
            summary[key] = {"first": values[0], "last": values[-1], "min": min(values)}
    text = run.config_path.read_text(encoding="utf-8") if run.config_path.exists() else ""
    return {
        "id": run.id,
        "path": str(run.path),
        "status": run.status(info),
        "info": info,
        "config": config.parse_yaml(text, str(run.config_path)) if text else None,
        "config_yaml": text,
        "metrics_summary": summary,
        "eval": _eval(run),
        "files": sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*") if p.is_file() and not p.name.startswith(".")),
    }


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def compare(runs: list[RunDir], out: Path, fmt: str = "png") -> dict[str, Any]:
    from lstmctl import config
    from lstmctl.plots import plot_compare

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
    figure = plot_compare(runs, out, fmt)
    return {"figure": str(figure), "differences": differ, "runs": rows}


# ---------------------------------------------------------------- sweep


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


def sweep(config_path: Path, grid: list[str], sets: list[str] | None, runs_dir=None, out_dir: Path = Path("."), quiet=True) -> dict:
    from lstmctl import config
    from lstmctl.commands import start_training
    from lstmctl.runs import write_text_atomic

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
                        "monitor": best["monitor"], "best": best["value"], "best_epoch": best["epoch"],
                        "epochs_done": summary["epochs_done"]})
    results.sort(key=lambda r: (r["best"] is None, r["best"] if r["best"] is not None else 0.0))
    path = Path(out_dir) / f"sweep-{sweep_id}.csv"
    fields = list(results[0])
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(results)
    write_text_atomic(path, buf.getvalue())
    return {"sweep": sweep_id, "csv": str(path), "results": results}
