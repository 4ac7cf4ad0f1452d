"""`lstmctl backtest CONFIG --folds K [--step S] [--refit|--no-refit]`: rolling-origin evaluation of a series.

K forecast origins on an expanding window. With n usable rows and S test rows per fold, fold k
(1..K) cuts the series at row c_k = n - (K - k + 1) * S: its test block is the S rows from c_k, and
every row before c_k is its training (and validation) part, so the K test blocks tile the last K * S
rows. S (--step) defaults to the config's test block divided by K, and at least the horizon (a test
block shorter than H holds no window). The cut travels as two config overrides, `data.test_start=c_k`
and `data.test_rows=S`, recorded in the fold run's run.json and saved config, so `eval RUN` of a fold
rebuilds exactly its data.

--refit (default): one run trained per fold. --no-refit: fold 1's run is trained; every later fold is
a run directory holding its own config, fold 1's data state (fold 1's scaler: the model's inputs are
scaled as it was trained) and copies of fold 1's checkpoints, marked completed with "trained_by".

The folds are a group (lstmctl/groups.py), as `train --seeds` makes one: each run.json carries the
group id, so `runs`, `eval GROUP`, `show GROUP` and `compare GROUP GROUP` read them; the group's record
says kind "backtest" with the folds' cuts. Bad options or a config that is not a tabular series, or folds
that leave too few training rows: one line, exit 2, before anything is written.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from rich.markup import escape

from lstmctl import config as config_mod
from lstmctl.commands.evaluate import evaluate_run
from lstmctl.commands.output import NUM, Col, finished_line, print_json, print_table, say
from lstmctl.commands.train import start_training
from lstmctl.data.facts import SeriesFacts
from lstmctl.data.series_windows import first_row
from lstmctl.errors import EXIT_SIGINT, Interrupted, LstmctlError, RunFailed, UserError
from lstmctl.groups import Group, create_group, discard_group, scalars
from lstmctl.plots.forecast import plot_backtest
from lstmctl.runs import RunDir, create_run, utcnow
from lstmctl.session import build_dataset, load_data_state, open_session
from lstmctl.train.recorder import record_new_run

CUT_KEYS = ("data.test_start", "data.test_rows")
SHOWN = ("mae", "rmse", "mase", "naive_mae", "snaive_mae", "drift_mae", "pinball")  # then coverage_* columns


def plan(cfg, folds: int, step: int | None) -> tuple[int, list[int], list[str]]:
    """(S, the K cuts, each cut's label: its date, else its row), or a UserError naming what does not fit."""
    if folds < 1:
        raise UserError(f"--folds must be at least 1, got {folds}")
    data = build_dataset(cfg)  # the config's own split: n rows, its test block, the horizon
    state, dates = data.state, data.facts.dates if isinstance(data.facts, SeriesFacts) else None
    n, n_test, horizon = state["rows"]["total"], state["rows"]["test"], max(state["steps"])
    size = step if step is not None else max(horizon, n_test // folds)
    if size < 1:
        raise UserError(f"--step must be at least 1, got {size}")
    if size < horizon:
        raise UserError(f"--step {size} is shorter than data.horizon = {horizon}: a fold's test block must hold one "
                        f"window's {horizon} targets; use --step {horizon} or more")
    first = n - folds * size
    p = cfg.data
    need = int(p.get("window", 24)) + horizon + first_row(p.get("target_transform", "none"))
    val = math.ceil(max(first, 0) * cfg.train.val_fraction) if cfg.train.val_fraction > 0 else 0
    if first - val < need:
        raise UserError(
            f"--folds {folds} x --step {size} = {folds * size} test rows leave {max(first, 0)} of the {n} rows before the "
            f"first origin ({max(first - val, 0)} for training), but one training window needs window + horizon = {need}; "
            "lower --folds or --step"
        )
    cuts = [first + k * size for k in range(folds)]
    return size, cuts, [str(dates[c]) if dates else f"row {c}" for c in cuts]


def backtest(path: Path, folds: int, step: int | None, refit: bool, sets: list[str] | None, runs_dir, *,
             quiet: bool = False, json_out: bool = False) -> None:
    """The command: check every fold's data, record the group, train (or reuse) and evaluate each fold, report."""
    sets = list(sets or [])
    for s in sets:
        if s.partition("=")[0].strip() in CUT_KEYS:
            raise UserError(f"--set {s.partition('=')[0].strip()}: backtest sets data.test_start and data.test_rows for "
                            "each fold; drop it (--step sets the rows of each fold's test block)")
    cfg = config_mod.load(path, sets)  # config errors: one line, nothing written
    if cfg.data.get("name") != "tabular":
        raise UserError(f"lstmctl backtest needs a series config (data.name: tabular); {path} has data.name: "
                        f"{cfg.data.get('name')} — evaluate other datasets with lstmctl train and eval")
    size, cuts, labels = plan(cfg, folds, step)
    fold_sets, fold_cfgs = [], []
    for k, cut in enumerate(cuts, 1):  # every fold's data is built before anything is written
        extra = [*sets, f"data.test_start={cut}", f"data.test_rows={size}"]
        fold_cfg = config_mod.load(path, extra)
        try:
            build_dataset(fold_cfg)
        except UserError as e:
            raise UserError(f"backtest fold {k} of {folds} (test rows {cut}-{cut + size - 1}): {e}") from None
        fold_sets.append(extra)
        fold_cfgs.append(fold_cfg)
    group = create_group(f"{cfg.name}-backtest", [cfg.seed] * folds, runs_dir, kind="backtest", source=str(path),
                         overrides=sets, folds=folds, step=size, refit=refit, cuts=cuts)
    runs = _train(path, group, fold_cfgs, fold_sets, runs_dir, refit=refit, quiet=quiet or json_out)
    results = [scalars(evaluate_run(run, "best", "test")["metrics"]) for run in runs]
    figure = plot_backtest(results, labels, runs[0].plots / "backtest.png",
                           f"{group.id}: {folds} folds of {size} test rows, {'refit per fold' if refit else 'one model (fold 1)'}")
    mean = _mean(results)
    fold_rows = [{"fold": k, "run": run.id, "test_start": cut, "test_rows": size, "first_target": label, **m}
                 for k, (run, cut, label, m) in enumerate(zip(runs, cuts, labels, results), 1)]
    if json_out:
        print_json({"group": group.id, "runs": [r.id for r in runs], "folds": fold_rows, "mean": mean, "refit": refit,
                    "step": size, "figure": str(figure)})
        return
    _print(group, fold_rows, mean, refit)
    print(f"figure:   {figure}")
    say(f"next: lstmctl eval {group.id}   (each fold's eval.json is written; lstmctl compare {group.id} OTHER_GROUP)")


def _train(path: Path, group: Group, cfgs: list, sets: list[list[str]], runs_dir, *, refit: bool, quiet: bool) -> list[RunDir]:
    runs: list[RunDir] = []
    for k, (cfg, extra) in enumerate(zip(cfgs, sets), 1):
        try:
            if refit or k == 1:
                run, summary = start_training(cfg, runs_dir, source=str(path), overrides=extra, quiet=quiet, group=group.id)
                if not quiet:
                    say(finished_line(run, summary) + f" (backtest {group.id}: fold {k} of {len(cfgs)})")
            else:
                run = _reuse(runs[0], cfg, extra, path, runs_dir, group)
        except Interrupted as e:
            raise Interrupted(f"{e}; backtest {group.id} stopped at fold {k} of {len(cfgs)} (its runs are kept; "
                              "run the backtest again for a complete one)", 2 if e.exit_code == EXIT_SIGINT else 15) from None
        except LstmctlError as e:
            if not group.members():  # nothing was made: the group record goes too
                discard_group(group)
                raise
            raise RunFailed(f"backtest {group.id}: fold {k} of {len(cfgs)} failed: {e}") from None
        runs.append(run)
    return runs


def _reuse(first: RunDir, cfg, extra: list[str], path: Path, runs_dir, group: Group) -> RunDir:
    """--no-refit: a fold run that evaluates fold 1's model at this fold's origin (fold 1's scaler and weights)."""
    session = open_session(cfg, data_state=load_data_state(first.data_state), device="cpu")
    run = create_run(cfg.name, runs_dir)
    record_new_run(run, session, source=str(path), overrides=extra, group=group.id, trained_by=first.id)
    for name in ("best.pt", "last.pt"):
        if (first.checkpoints / name).exists():
            shutil.copy2(first.checkpoints / name, run.checkpoints / name)
    if first.metrics_csv.exists():
        shutil.copy2(first.metrics_csv, run.metrics_csv)
    info = first.info()
    run.update(status="completed", ended=utcnow(), **{k: info[k] for k in ("epochs_done", "stop_reason", "best", "final") if k in info})
    return run


def _mean(results: list[dict[str, Any]]) -> dict[str, float]:
    """Each metric's mean over the folds that have it (a seasonal naive may be undefined on some)."""
    names: list[str] = []
    for m in results:
        names += [k for k in m if k not in names]
    return {k: sum(v) / len(v) for k in names if (v := [m[k] for m in results if k in m])}


def _print(group: Group, rows: list[dict], mean: dict, refit: bool) -> None:
    keys = [k for k in SHOWN if k in mean] + [k for k in mean if k.startswith("coverage_")]
    cols = [Col("fold", 0, NUM, "right"), Col("first target", 1, min=8), *[Col(k, 0 if i < 3 else 2, NUM, "right") for i, k in enumerate(keys)]]

    def cells(row: dict) -> list[str]:
        return [("—" if row.get(k) is None else f"{row[k]:.4g}") for k in keys]

    body = [[str(r["fold"]), escape(str(r["first_target"])), *cells(r)] for r in rows]
    print_table(cols, [*body, None, ["mean", "", *cells(mean)]],
                title=f"backtest {group.id}: {len(rows)} folds, {'a model per fold' if refit else 'one model (fold 1)'}, test split")
    print(f"group id: {group.id}")
    print(f"runs:     {' '.join(r['run'] for r in rows)}")
