"""`lstmctl runs` (the runs, newest first, a group's on one row) and `lstmctl show` (one run's config,
facts and metrics; a group's runs and each metric aggregated over them).

Both read run directories only: no dataset or model is built.
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from typing import Any

from rich.syntax import Syntax
from rich.table import Table

from lstmctl import config
from lstmctl.commands.output import console, fmt, mean_std, monitor_cell, print_json, read_eval, run_row, stats_table
from lstmctl.groups import Group, aggregate, member_info, members_or_error, resolve
from lstmctl.runs import RunDir, list_runs
from lstmctl.stats import summarize

STATUS_COLORS = {"completed": "green", "failed": "red", "interrupted": "yellow", "died": "red", "damaged": "red", "running": "cyan"}
SHOW_KEYS = ("status", "dataset", "model", "task", "params", "device", "world_size", "seed", "group", "epochs_done", "epochs",
             "stop_reason", "best", "created", "started", "ended", "torch_version", "lstmctl_version", "host", "pid", "error")


def runs_table(runs_dir=None, status: str | None = None, name: str | None = None, limit: int | None = None,
               expand: bool = False) -> list[dict]:
    """The rows of `lstmctl runs`: the runs newest first, the runs of a group collapsed into one row
    (at its newest run's place) unless `expand`. Filters apply to the runs, before they are collapsed."""
    rows = []
    for run in list_runs(runs_dir):
        row = run_row(run)
        if status and row["status"] != status:
            continue
        if name and not fnmatch.fnmatchcase(row.get("name") or "", name if any(c in name for c in "*?[") else f"*{name}*"):
            continue
        rows.append(row)
        if limit and expand and len(rows) >= limit:
            break
    if not expand:
        rows = collapse(rows)
    return rows[:limit] if limit else rows


def collapse(rows: list[dict]) -> list[dict]:
    """Replace the rows of each group's runs with one row for the group."""
    members: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("group"):
            members.setdefault(r["group"], []).append(r)
    out, seen = [], set()
    for r in rows:
        gid = r.get("group")
        if not gid:
            out.append(r)
        elif gid not in seen:
            seen.add(gid)
            out.append(group_row(gid, members[gid]))
    return out


def group_row(gid: str, rows: list[dict]) -> dict[str, Any]:
    """One row for a group: what its runs share, and the mean ± std of the best monitored value and of the
    headline eval metric over them."""
    rows = sorted(rows, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
    statuses = Counter(r["status"] for r in rows)
    best = summarize([r.get("best_value") for r in rows])
    monitors = {(r.get("best_monitor"), r.get("best_mode")) for r in rows if r.get("best_monitor")}
    metrics = {r["metric"] for r in rows if r.get("metric")}
    metric = summarize([r.get("metric_value") for r in rows]) if len(metrics) == 1 else None
    durations = [r["duration_s"] for r in rows if r.get("duration_s") is not None]
    done = [r["epochs_done"] for r in rows if isinstance(r.get("epochs_done"), int)]
    first = rows[0]
    return {
        "id": gid, "kind": "group", "runs": [r["id"] for r in rows], "seeds": [r.get("seed") for r in rows], "n": len(rows),
        "name": first.get("name"), "dataset": first.get("dataset"), "model": first.get("model"),
        "status": next(iter(statuses)) if len(statuses) == 1 else "mixed", "statuses": dict(statuses),
        "epochs_done": min(done) if done else None, "epochs": max((r.get("epochs") or 0 for r in rows), default=None),
        "best_monitor": next(iter(monitors))[0] if len(monitors) == 1 else None,
        "best_mode": next(iter(monitors))[1] if len(monitors) == 1 else None,
        "best_value": best["mean"], "best_std": best["std"], "best_n": best["n"],
        "metric": next(iter(metrics)) if metric else None, "metric_value": metric["mean"] if metric else None,
        "metric_std": metric["std"] if metric else None, "metric_n": metric["n"] if metric else 0,
        "created": min((r.get("created") or "" for r in rows), default=None) or None,
        "duration_s": round(sum(durations), 3) if durations else None,
    }


def list_(runs_dir=None, status: str | None = None, name: str | None = None, limit: int | None = None,
          json_out: bool = False, expand: bool = False) -> None:
    """`lstmctl runs`: a table (or JSON list) of the runs, newest first; groups on one row unless `expand`."""
    rows = runs_table(runs_dir, status, name, limit, expand)
    if json_out:
        print_json(rows)
        return
    n_runs = sum(r.get("n", 1) for r in rows)
    groups = sum(r["kind"] == "group" for r in rows)
    title = f"{n_runs} run{'s' * (n_runs != 1)}" + (f", {groups} group{'s' * (groups != 1)} collapsed (--all shows their runs)" if groups else "")
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for col in ("name", "dataset", "model", "status", "epochs", "monitor", "best", "eval", "created", "time"):
        table.add_column(col, overflow="fold")
    for r in rows:
        st = r["status"]
        if st == "damaged":
            table.add_row(r["id"], "—", "—", "—", "[red]damaged[/]", "—", "—", "—", "—", "—", r.get("problem", "")[:60])
            continue
        if r["kind"] == "group":
            ident = f"{r['id']} ({r['n']} runs)"
            st_cell = _status(st) if st != "mixed" else ", ".join(f"{n} {_status(s)}" for s, n in r["statuses"].items())
            best = mean_std({"mean": r["best_value"], "std": r["best_std"]})
            ev = f"{r['metric']} {mean_std({'mean': r['metric_value'], 'std': r['metric_std']})}" if r.get("metric") else "—"
        else:
            ident = r["id"] + (f" [{r['group']}]" if r.get("group") else "")
            st_cell = _status(st)
            best = fmt(r["best_value"]) + (f" @ {r['best_epoch']}" if r.get("best_epoch") and r["best_value"] is not None else "")
            ev = f"{r['metric']} {fmt(r['metric_value'])}" if r.get("metric") else "—"
        table.add_row(
            ident, fmt(r["name"]), fmt(r["dataset"]), fmt(r["model"]), st_cell,
            f"{fmt(r['epochs_done'])}/{fmt(r['epochs'])}", monitor_cell(r), best, ev,
            (r["created"] or "—")[:19].replace("T", " "), f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "—",
        )
    console().print(table)


def _status(st: str) -> str:
    return f"[{STATUS_COLORS.get(st, 'white')}]{st}[/]"


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
    """`lstmctl show`: the config, run.json's facts, a metrics summary and the last eval (a group: aggregated)."""
    found = resolve(ref, runs_dir)
    if isinstance(found, Group):
        return show_group(found, json_out=json_out)
    data = show_data(found)
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


def show_group_data(group: Group) -> dict[str, Any]:
    """A group as data: its record, one row per run, and each scalar metric aggregated over the runs:
    the best monitored value, the final losses of run.json and the metrics of the runs' eval.json
    (those of the split most runs were evaluated on)."""
    members = members_or_error(group)
    rows = [run_row(r) for r in members]
    infos = [member_info(r) for r in members]
    monitors = {(row.get("best_monitor"), row.get("best_mode")) for row in rows if row.get("best_monitor")}
    evals = [e for e in (read_eval(r) for r in members) if e and isinstance(e.get("metrics"), dict)]
    split = Counter((e.get("split"), e.get("checkpoint")) for e in evals).most_common(1)
    evals = [e for e in evals if split and (e.get("split"), e.get("checkpoint")) == split[0][0]]
    return {
        "group": group.id,
        "record": {k: v for k, v in group.record().items() if k != "config"},
        "runs": [r.id for r in members],
        "members": rows,
        "best": {"monitor": next(iter(monitors))[0] if len(monitors) == 1 else None,
                 "mode": next(iter(monitors))[1] if len(monitors) == 1 else None,
                 **summarize([row.get("best_value") for row in rows])},
        "final": aggregate([i.get("final") for i in infos if isinstance(i.get("final"), dict)]),
        "eval": {"split": split[0][0][0], "checkpoint": split[0][0][1], "runs": [e.get("run") for e in evals],
                 "metrics": aggregate([e["metrics"] for e in evals])} if evals else None,
    }


def show_group(group: Group, json_out: bool = False) -> None:
    data = show_group_data(group)
    if json_out:
        print_json(data)
        return
    con = console()
    rec = data["record"]
    con.print(f"[bold]{data['group']}[/]  group of {len(data['runs'])} runs"
              + (f" of {rec['source']}" if rec.get("source") else "") + (f", seeds {rec['seeds']}" if rec.get("seeds") else ""))
    runs = Table(title="runs")
    for col in ("id", "seed", "status", "epochs", "monitor", "best", "eval"):
        runs.add_column(col, overflow="fold")
    for r in data["members"]:
        if r["status"] == "damaged":
            runs.add_row(r["id"], "—", "[red]damaged[/]", "—", "—", "—", "—")
            continue
        runs.add_row(r["id"], fmt(r.get("seed")), _status(r["status"]), f"{fmt(r['epochs_done'])}/{fmt(r['epochs'])}",
                     monitor_cell(r), fmt(r["best_value"]) + (f" @ {r['best_epoch']}" if r.get("best_epoch") else ""),
                     f"{r['metric']} {fmt(r['metric_value'])}" if r.get("metric") else "—")
    con.print(runs)
    rows = {}
    if data["best"]["monitor"]:
        rows[f"best {data['best']['monitor']} ({data['best']['mode']})"] = data["best"]
    rows.update({f"final {k}": v for k, v in data["final"].items()})
    if data["eval"]:
        ev = data["eval"]
        rows.update({f"{ev['split']} {k}": v for k, v in ev["metrics"].items()})
    con.print(stats_table(rows, title="over the runs (mean, std, 95% interval from Student's t)", label="quantity"))
    if not data["eval"]:
        con.print(f"no eval.json yet: lstmctl eval {data['group']} evaluates every run")
