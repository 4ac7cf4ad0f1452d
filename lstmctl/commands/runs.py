"""`lstmctl runs` (the runs, newest first, a group's on one row) and `lstmctl show` (one run's config,
facts and metrics; a group's runs and each metric aggregated over them).

Both read run directories only: no dataset or model is built.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from typing import Any

from rich.markup import escape
from rich.syntax import Syntax
from rich.text import Text

from lstmctl import config
from lstmctl.commands.output import (ID, NUM, WORDS, Col, best_mode, console, fmt, mean_std, monitor_cell, print_json, print_stats,
                                     print_table, read_eval, run_row)
from lstmctl.groups import Group, aggregate, member_info, members_or_error, resolve
from lstmctl.runs import RunDir, list_runs
from lstmctl.stats import summarize

STATUS_COLORS = {"completed": "green", "failed": "red", "interrupted": "yellow", "died": "red", "damaged": "red", "running": "cyan",
                 "pruned": "magenta"}
SHOW_KEYS = ("status", "dataset", "model", "task", "params", "device", "world_size", "seed", "group", "epochs_done", "epochs",
             "stop_reason", "best", "created", "started", "ended", "torch_version", "lstmctl_version", "host", "pid", "error")


def runs_table(runs_dir=None, status: str | None = None, name: str | None = None, limit: int | None = None,
               expand: bool = False, study: str | None = None) -> list[dict]:
    """The rows of `lstmctl runs`: the runs newest first, the runs of a group collapsed into one row
    (at its newest run's place) unless `expand`. Filters apply to the runs, before they are collapsed."""
    rows = []
    for run in list_runs(runs_dir):
        if study and member_info(run).get("study") != study:  # `runs --study NAME`: the trials of one study
            continue
        row = run_row(run)
        if row["status"] != "damaged":
            row["vs_naive"] = vs_naive(run)
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


def vs_naive(run: RunDir) -> float | None:
    """A forecast's eval.json mae_vs_naive (the model's MAE over the naive forecast's; < 1 beats it), if any."""
    ev = read_eval(run)
    value = ev["metrics"].get("mae_vs_naive") if ev and isinstance(ev.get("metrics"), dict) else None
    return value if isinstance(value, (int, float)) else None


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
        "vs_naive": summarize([r.get("vs_naive") for r in rows])["mean"] if any(r.get("vs_naive") for r in rows) else None,
    }


def list_(runs_dir=None, status: str | None = None, name: str | None = None, limit: int | None = None,
          json_out: bool = False, expand: bool = False, study: str | None = None) -> None:
    """`lstmctl runs`: a table (or JSON list) of the runs, newest first; groups on one row unless `expand`."""
    rows = runs_table(runs_dir, status, name, limit, expand, study)
    if json_out:
        print_json(rows)
        return
    n_runs = sum(r.get("n", 1) for r in rows)
    groups = sum(r["kind"] == "group" for r in rows)
    title = f"{n_runs} run{'s' * (n_runs != 1)}" + (f", {groups} group{'s' * (groups != 1)} collapsed (--all shows their runs)" if groups else "")
    print_table(*run_columns(rows, RUNS_COLUMNS), title=title)


# ---------------------------------------------------------------- the rows of runs and of show GROUP

RUNS_COLUMNS = ("id", "group", "name", "dataset", "model", "status", "problem", "epochs", "monitor", "best", "eval", "vs_naive", "created", "time")
COLUMNS = {  # a column of the tables of runs: its importance (0 = always shown; the highest go first) and kind
    "id": Col("id", 0, ID), "group": Col("group", 9, ID), "seed": Col("seed", 2, NUM, "right"),
    "name": Col("name", 7), "dataset": Col("dataset", 8), "model": Col("model", 6, min=6), "status": Col("status", 1, NUM),
    "problem": Col("problem", 4, min=16), "epochs": Col("epochs", 5, NUM, "right"), "monitor": Col("monitor", 3, min=12),
    "best": Col("best", 2, NUM), "eval": Col("eval", 3, NUM), "created": Col("created", 10, NUM), "time": Col("time", 11, NUM, "right"),
    "vs_naive": Col("mae/naive", 12, NUM, "right"),  # forecasts: eval's mae_vs_naive; the first column dropped
}


def shared(rows: list[dict], value: str, *keys: str) -> tuple | None:
    """The `keys` (e.g. the monitor and its mode) of every row that has a `value`, when they are one and
    the same and not None; else None."""
    values = {tuple(r.get(k) for k in keys) for r in rows if r["status"] != "damaged" and r.get(value) is not None}
    return next(iter(values)) if len(values) == 1 and None not in next(iter(values)) else None


def run_columns(rows: list[dict], names: tuple[str, ...]) -> tuple[list[Col], list[list[str]]]:
    """The columns `names` of run_row/group_row rows, for print_table. When every row watched one monitor
    the best column's header names it ("best val_loss (min)") and there is no monitor column; when every
    evaluated row has one metric the eval column's header names it ("test mse") and its cells are numbers."""
    monitor, metric = shared(rows, "best_value", "best_monitor", "best_mode"), shared(rows, "metric_value", "metric")
    skip = {"monitor"} if monitor else set()
    skip |= set() if any(r.get("group") for r in rows if r["kind"] == "run") else {"group"}
    skip |= set() if any(r["status"] == "damaged" for r in rows) else {"problem"}
    skip |= set() if any(r.get("vs_naive") is not None for r in rows) else {"vs_naive"}
    names = tuple(n for n in names if n not in skip)
    cols = [COLUMNS[n] for n in names]
    if monitor:
        cols[names.index("best")] = Col(f"best {monitor[0]} ({monitor[1]})", 2, NUM)
    if metric and "eval" in names:
        cols[names.index("eval")] = Col(metric[0], 3, NUM)
    return cols, [[_cell(r, n, metric is not None) for n in names] for r in rows]


def _cell(r: dict, name: str, metric_in_header: bool) -> str | tuple[str, str]:
    group = r["kind"] == "group"
    if r["status"] == "damaged":  # the problem without "run ID is damaged: ", said by the id and status cells
        problem = (r.get("problem") or "").removeprefix(f"run {r['id']} is damaged: ")
        return {"id": escape(r["id"]), "status": _status("damaged"), "problem": escape(problem)}.get(name, "—")
    if name == "id":  # a group: "ID (3 runs)", or on a narrow terminal the bare id and "3 completed"
        return (f"{escape(r['id'])} ({r['n']} runs)", escape(r["id"])) if group else escape(r["id"])
    if name == "status":
        if r["status"] == "mixed":
            return ", ".join(f"{n} {_status(s)}" for s, n in r["statuses"].items())
        return (_status(r["status"]), f"{r['n']} {_status(r['status'])}") if group else _status(r["status"])
    if name == "best":
        if group:
            return mean_std({"mean": r["best_value"], "std": r["best_std"]})
        return fmt(r["best_value"]) + (f" @ {r['best_epoch']}" if r.get("best_epoch") and r["best_value"] is not None else "")
    if name == "eval":
        if not r.get("metric"):
            return "—"
        value = mean_std({"mean": r["metric_value"], "std": r["metric_std"]}) if group else fmt(r["metric_value"])
        return value if metric_in_header else f"{r['metric']} {value}"
    if name == "epochs":
        return f"{fmt(r['epochs_done'])}/{fmt(r['epochs'])}"
    if name == "monitor":
        return monitor_cell(r)
    if name == "created":
        return (r["created"] or "—")[:19].replace("T", " ")
    if name == "time":
        return f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "—"
    return escape(fmt(r.get(name)))


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
    con.print(f"[bold]{escape(data['id'])}[/]  ({data['status']})  {escape(data['path'])}", highlight=False)
    yaml_text = (data["config_yaml"] or "# no config.yaml").rstrip("\n")
    if con.is_terminal:
        con.print(Syntax(yaml_text, "yaml", theme="ansi_dark", background_color="default", word_wrap=True))
    else:
        con.print(Text(yaml_text))
    info = data["info"]
    facts = [[k, escape(data["status"] if k == "status" else fact(k, info[k]))] for k in SHOW_KEYS if k in info]
    print_table([Col("fact", 0, NUM), Col("value", 0, WORDS)], facts, title="run", show_header=False, con=con)
    losses = [[k, fmt(s["first"]), fmt(s["last"]), fmt(s["min"])] for k, s in data["metrics_summary"].items() if isinstance(s, dict)]
    print_table([Col("loss", 0, NUM)] + [Col(c, 1, NUM, "right") for c in ("first", "last", "min")], losses, title="metrics", con=con)
    if data["eval"]:
        ev = data["eval"]
        flat = [[escape(k), fmt(v)] for k, v in ev["metrics"].items() if isinstance(v, (int, float))]
        title = f"eval ({ev['split']}, {ev['checkpoint']})" + (f", epoch {ev['epoch']}" if ev.get("epoch") is not None else "")
        print_table([Col("metric", 0, min=16), Col("value", 0, NUM, "right")], flat, title=title, con=con)


def fact(key: str, value: Any) -> str:
    """A value of run.json as a person reads it: `best` as "val_loss 0.5034 at epoch 3 (min)", numbers
    with their thousands, a dict as "key value, ...", a list comma-separated."""
    if key == "best" and isinstance(value, dict):
        if value.get("value") is None:
            return f"{value.get('monitor', '—')}: no finite value yet"
        mode = best_mode(value)
        return f"{value.get('monitor')} {fmt(value['value'])} at epoch {value.get('epoch')}" + (f" ({mode})" if mode else "")
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "—"
    if isinstance(value, int) and not isinstance(value, bool) and key == "params":
        return f"{value:,}"
    return fmt(value)


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
    seeds = ", ".join(map(str, rec["seeds"])) if isinstance(rec.get("seeds"), list) else rec.get("seeds")
    con.print(f"[bold]{escape(data['group'])}[/]  group of {len(data['runs'])} runs"
              + (f" of {escape(str(rec['source']))}" if rec.get("source") else "") + (f", seeds {seeds}" if seeds else ""), highlight=False)
    print_table(*run_columns(data["members"], ("id", "seed", "status", "problem", "epochs", "monitor", "best", "eval")), title="runs", con=con)
    rows = {}
    if data["best"]["monitor"]:
        rows[f"best {data['best']['monitor']} ({data['best']['mode']})"] = data["best"]
    rows.update({f"final {k}": v for k, v in data["final"].items()})
    if data["eval"]:
        ev = data["eval"]
        rows.update({f"{ev['split']} {k}": v for k, v in ev["metrics"].items()})
    print_stats(rows, title="over the runs (mean, std, 95% interval from Student's t)", label="quantity")
    if not data["eval"]:
        con.print(f"no eval.json yet: lstmctl eval {escape(data['group'])} evaluates every run", highlight=False)
