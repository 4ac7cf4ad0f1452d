"""`lstmctl runs` (the runs, newest first) and `lstmctl show` (one run's config, facts and metrics).

Both read run directories only: no dataset or model is built.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from rich.syntax import Syntax
from rich.table import Table

from lstmctl import config
from lstmctl.commands.output import console, fmt, print_json, read_eval, run_row
from lstmctl.runs import RunDir, find_run, list_runs

STATUS_COLORS = {"completed": "green", "failed": "red", "interrupted": "yellow", "died": "red", "damaged": "red", "running": "cyan"}
SHOW_KEYS = ("status", "dataset", "model", "task", "params", "device", "world_size", "seed", "epochs_done", "epochs",
             "stop_reason", "best", "created", "started", "ended", "torch_version", "lstmctl_version", "host", "pid", "error")


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


def list_(runs_dir=None, status: str | None = None, name: str | None = None, limit: int | None = None,
          json_out: bool = False) -> None:
    """`lstmctl runs`: a table (or JSON list) of the runs, newest first."""
    rows = runs_table(runs_dir, status, name, limit)
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} run{'s' * (len(rows) != 1)}")
    table.add_column("id", no_wrap=True)
    for col in ("name", "dataset", "model", "status", "epochs", "best loss", "eval", "created", "time"):
        table.add_column(col, overflow="fold")
    for r in rows:
        st = r["status"]
        if st == "damaged":
            table.add_row(r["id"], "—", "—", "—", "[red]damaged[/]", "—", "—", "—", "—", r.get("problem", "")[:60])
            continue
        ev = f"{r['metric']} {fmt(r['metric_value'])}" if r.get("metric") else "—"
        table.add_row(
            r["id"], fmt(r["name"]), fmt(r["dataset"]), fmt(r["model"]), f"[{STATUS_COLORS.get(st, 'white')}]{st}[/]",
            f"{fmt(r['epochs_done'])}/{fmt(r['epochs'])}", fmt(r["best_value"]), ev,
            (r["created"] or "—")[:19].replace("T", " "), f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "—",
        )
    console().print(table)


def show_data(run: RunDir) -> dict[str, Any]:
    """Everything `show` prints, as data (its --json output, without the config's YAML text)."""
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
        "eval": read_eval(run),
        "files": sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*") if p.is_file() and not p.name.startswith(".")),
    }


def show(ref: str, runs_dir=None, json_out: bool = False) -> None:
    """`lstmctl show`: the config, run.json's facts, a metrics summary and the last eval."""
    data = show_data(find_run(ref, runs_dir))
    if json_out:
        print_json({k: v for k, v in data.items() if k != "config_yaml"})
        return
    con = console()
    con.print(f"[bold]{data['id']}[/]  ({data['status']})  {data['path']}")
    con.print(Syntax(data["config_yaml"] or "# no config.yaml", "yaml", theme="ansi_dark", background_color="default"))
    facts = Table(show_header=False, title="run")
    info = data["info"]
    for k in SHOW_KEYS:
        if k in info:
            facts.add_row(k, data["status"] if k == "status" else fmt(json.dumps(info[k]) if isinstance(info[k], dict) else info[k]))
    con.print(facts)
    ms = Table(title="metrics")
    for c in ("loss", "first", "last", "min"):
        ms.add_column(c)
    for k in ("train_loss", "val_loss"):
        if k in data["metrics_summary"]:
            s = data["metrics_summary"][k]
            ms.add_row(k, fmt(s["first"]), fmt(s["last"]), fmt(s["min"]))
    con.print(ms)
    if data["eval"]:
        ev = data["eval"]
        flat = {k: v for k, v in ev["metrics"].items() if isinstance(v, (int, float))}
        con.print(f"eval ({ev['split']}, {ev['checkpoint']}): " + ", ".join(f"{k} {fmt(v)}" for k, v in flat.items()))
