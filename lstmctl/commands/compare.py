"""`lstmctl compare`: overlay the loss curves of runs in one figure, list the config keys that differ.

Two groups (`compare GROUP_A GROUP_B`): the difference of the headline metric (test accuracy for
classification, test mse otherwise, from the runs' eval.json), mean(B) - mean(A), with its 95%
interval and Welch's t-test (lstmctl/stats.py), and a plain verdict: beyond or within seed noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape

from lstmctl import config
from lstmctl.commands.output import (Col, console, fit, fmt, headline_key, interval, mean_std, print_json, print_table, read_eval, run_row,
                                     say, tables_wide)
from lstmctl.errors import UserError
from lstmctl.groups import Group, member_info, members_or_error, resolve
from lstmctl.plots import plot_compare, plot_compare_groups
from lstmctl.runs import RunDir
from lstmctl.stats import finite_values, summarize, welch


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


def flat_config(run: RunDir) -> dict[str, Any]:
    if not run.config_path.exists():
        raise UserError(f"run {run.id} is damaged: it has no config.yaml")
    return flatten(config.read_yaml(run.config_path))


def differences(flats: list[dict[str, Any]]) -> dict[str, list]:
    """The keys whose values are not all the same, with one value per config."""
    keys = sorted(set().union(*flats))
    return {k: [f.get(k) for f in flats] for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1}


def compare_runs(runs: list[RunDir], out: Path, figure_format: str = "png") -> dict[str, Any]:
    """The figure's path, the config keys whose values differ (one value per run) and each run's results."""
    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    if len({r.id for r in runs}) < len(runs):
        raise UserError("compare was given the same run twice")
    differ = differences([flat_config(r) for r in runs])
    rows = []
    for r in runs:
        row = run_row(r)
        rows.append({"id": r.id, "best_monitor": row.get("best_monitor"), "best_value": row.get("best_value"),
                     "epochs_done": row.get("epochs_done"), "metric": row.get("metric"), "metric_value": row.get("metric_value")})
    figure = plot_compare(runs, out, figure_format)
    return {"figure": str(figure), "differences": differ, "runs": rows}


def headline_of(group: Group) -> tuple[str, list[float], list[str]]:
    """(metric, values, run ids): the group's headline metric (test accuracy for classification, test mse
    otherwise) from its runs' eval.json. A run that could be evaluated but has no test eval.json is an error."""
    members = members_or_error(group)
    keys, values, ids, missing = set(), [], [], []
    for run in members:
        ev = read_eval(run)
        if not ev or ev.get("split") != "test" or not isinstance(ev.get("metrics"), dict):
            if run.checkpoint("best").exists():
                missing.append(run.id)
            else:
                say(f"left out {run.id} of {group.id}: it has no checkpoint to evaluate (status {run.status()})")
            continue
        key = headline_key(ev.get("task") or member_info(run).get("task"))
        keys.add(key)
        if finite_values([ev["metrics"].get(key)]):
            values.append(float(ev["metrics"][key]))
            ids.append(run.id)
        else:
            say(f"left out {run.id} of {group.id}: its test {key} is {ev['metrics'].get(key)}")
    if missing:
        raise UserError(f"{len(missing)} of the {len(members)} runs of group {group.id} have no test eval.json "
                        f"(e.g. {missing[0]}); run `lstmctl eval {group.id}` first")
    if len(keys) > 1:
        raise UserError(f"the runs of group {group.id} are of different tasks ({', '.join(sorted(keys))}); they cannot be compared")
    return (keys.pop() if keys else "mse"), values, ids


def compare_groups(a: Group, b: Group, out: Path, figure_format: str = "png") -> dict[str, Any]:
    """The difference of the headline metric, mean(b) - mean(a), with its 95% interval, Welch's t-test
    and the verdict; the config keys that differ; the figure of mean curves with a +-std band."""
    if a.id == b.id:
        raise UserError("compare was given the same group twice")
    (ka, va, ia), (kb, vb, ib) = headline_of(a), headline_of(b)
    if ka != kb:
        raise UserError(f"group {a.id} is judged by test {ka} and group {b.id} by test {kb}; compare groups of one task")
    if len(va) < 2 or len(vb) < 2:
        raise UserError(f"Welch's t-test needs at least two evaluated runs in each group ({a.id}: {len(va)}, {b.id}: {len(vb)}); "
                        "train three or more seeds (--seeds 3)")
    test = welch(va, vb)
    flats = []
    for g in (a, b):
        flat = flat_config(g.members()[0])
        flat.pop("seed", None)  # the seeds differ within a group, not between the groups
        flats.append(flat)
    figure = plot_compare_groups([(g.id, g.members()) for g in (a, b)], out, figure_format)
    return {
        "groups": [a.id, b.id],
        "metric": f"test {ka}",
        "higher_is_better": ka == "accuracy",
        "a": {"group": a.id, "runs": ia, "values": va, **summarize(va)},
        "b": {"group": b.id, "runs": ib, "values": vb, **summarize(vb)},
        **{k: test[k] for k in ("difference", "ci95", "p_value", "t", "df", "test", "alpha", "verdict")},
        "differences": differences(flats),
        "figure": str(figure),
    }


def compare(refs: list[str], out: Path, figure_format: str = "png", runs_dir=None, json_out: bool = False) -> None:
    found = [resolve(r, runs_dir) for r in refs]
    groups = [f for f in found if isinstance(f, Group)]
    if groups:
        if len(groups) != len(found) or len(found) != 2:
            raise UserError("compare takes two or more runs, or exactly two groups (GROUP_A GROUP_B), not a mix")
        return _print_groups(compare_groups(groups[0], groups[1], out, figure_format), json_out)
    result = compare_runs(found, out, figure_format)
    if json_out:
        print_json(result)
        return
    runs = result["runs"]
    rows: list = [[escape(key), *[escape(fmt(v)) for v in values]] for key, values in result["differences"].items()]
    rows += [None, ["epochs done", *[fmt(r["epochs_done"]) for r in runs]]]
    monitors = {r["best_monitor"] for r in runs}
    if len(monitors) == 1 and None not in monitors:  # one monitor: named once, in the row's label
        rows.append([f"best {escape(str(monitors.pop()))}", *[fmt(r["best_value"]) for r in runs]])
    else:
        rows.append(["best", *[f"{fmt(r['best_value'])} ({escape(str(r['best_monitor']))})" for r in runs]])
    metrics = {r["metric"] for r in runs if r["metric"]}
    if len(metrics) == 1:  # one metric for every evaluated run: named once
        rows.append([escape(metrics.pop()), *[fmt(r["metric_value"]) if r["metric"] else "—" for r in runs]])
    else:
        rows.append(["eval", *[f"{r['metric']} {fmt(r['metric_value'])}" if r["metric"] else "—" for r in runs]])
    print_side_by_side("config keys that differ", [r["id"] for r in runs], [f"run {i + 1}" for i in range(len(runs))], rows)
    print(result["figure"])


def print_side_by_side(title: str, ids: list[str], labels: list[str], rows: list) -> None:
    """A table of one column per run (or group), headed by its id. When the ids do not fit the terminal
    side by side, the columns are headed by `labels` (run 1, run 2, ...) under a legend of the ids, and
    split into several tables of as many columns as fit, each with the key column."""
    con = console()

    def cols(headers: list[str]) -> list[Col]:
        return [Col("key", 0, min=16)] + [Col(h, 1, min=12) for h in headers]

    def part(a: int, b: int) -> list:
        return [None if r is None else [r[0], *r[1 + a:1 + b]] for r in rows]

    if tables_wide() or not con.is_terminal or len(fit(cols(ids), rows, con.width)[0]) == len(ids) + 1:
        print_table(cols(ids), rows, title=title, con=con)
        return
    for label, ident in zip(labels, ids):
        con.print(f"{label}: {escape(ident)}", highlight=False)
    step = len(ids)
    while step > 1 and len(fit(cols(labels[:step]), part(0, step), con.width)[0]) < step + 1:
        step -= 1
    for a in range(0, len(ids), step):
        print_table(cols(labels[a:a + step]), part(a, a + step), title=title if a == 0 else None, con=con)


def _print_groups(result: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(result)
        return
    a, b = result["a"], result["b"]
    rows: list = [[escape(key), *[escape(fmt(v)) for v in values]] for key, values in result["differences"].items()]
    rows += [None, ["runs", *[str(g["n"]) for g in (a, b)]], [f"{result['metric']} (mean ± std)", *[mean_std(g) for g in (a, b)]],
             ["95% interval of the mean", *[interval(g["ci95"]) for g in (a, b)]]]
    print_side_by_side("config keys that differ", [a["group"], b["group"]], ["first", "second"], rows)
    d, p = result["difference"], result["p_value"]
    con = console()  # on a terminal these wrap between words, in a file each stays one line
    con.print(f"difference in {result['metric']} (second − first): {d:+.4g}, 95% interval {interval(result['ci95'])}", markup=False, highlight=False)
    stat = "no spread in either group" if result["t"] is None else f"t = {result['t']:.3g}, df = {result['df']:.3g}"
    con.print(f"{result['test']}: {stat}, p = {p:.3g}: {result['verdict']} (p {'<' if p < result['alpha'] else '≥'} {result['alpha']})",
              markup=False, highlight=False)
    print(result["figure"])
