"""tabular: sliding windows over a CSV time series, split chronologically, H steps forecast at once.

A window is `window` consecutive rows of the feature columns; its targets are the target column's
next `horizon` rows (direct multi-output; horizon 1 = the next row). Rows are split in time order
into train | val | test (val = the last `train.val_fraction` of the non-test rows); a window belongs
to the split that holds ALL its target rows (windows straddling two blocks are dropped), so no target
of a val/test window is ever seen in training, and val/test windows may look back into earlier rows
for context (that is the past, known at forecast time). The scaler is fitted on the training rows
alone and saved in the run as plain numbers (data_state.json). Reading: series_read.py; windows,
baselines and the reversible transforms: series_windows.py; one series' windows: series_build.py; a long
table of many series (data.series_column): series_many.py; known-future inputs and calendar features:
series_future.py (docs/forecasting.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lstmctl.data.base import DataBundle, Split, Task
from lstmctl.data import series_future as sf
from lstmctl.data import series_many as many
from lstmctl.data import series_predict as sp
from lstmctl.data import series_windows as sw
from lstmctl.data.facts import SeriesFacts
from lstmctl.data.series_build import Piece, build_piece, fit_scaler, fold_scaler  # noqa: F401  (fit_scaler: kept importable)
from lstmctl.data.series_read import column, handle_missing, is_numeric, numeric_columns, place, read_table
from lstmctl.errors import UserError
from lstmctl.registry import register_dataset
from lstmctl.schema import Strict

class TabularParams(Strict):
    path: str = Field(
        ...,
        description="CSV file with a header row; relative paths are relative to the config file's folder "
        "(to the current directory when given with --set)",
        json_schema_extra={"config_relative": True},
    )
    target: str = Field(..., description="column to predict")
    features: list[str] | None = Field(
        None, description="input columns; null = every numeric column except date_column (the target's past included)"
    )
    window: int = Field(24, ge=1, le=1_000_000, description="rows of history per input sequence")
    horizon: int = Field(
        1, ge=1, le=1_000_000, description="forecast steps: the model predicts each of the target's next `horizon` rows at once"
    )
    stride: int = Field(1, ge=1, le=1_000_000, description="rows between the starts of consecutive windows")
    date_column: str | None = Field(None, description="column holding dates or labels: the x axis of plots (not a feature)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="last share of the rows whose targets form the test split")
    test_start: int | None = Field(
        None, ge=1, le=100_000_000, description="first row (0-based, of the usable rows) of the test block, instead of "
        "test_fraction; lstmctl backtest sets it per fold (the rows before it: train and val)"
    )
    test_rows: int | None = Field(
        None, ge=1, le=100_000_000, description="rows in the test block (from test_start, else the last ones), instead of "
        "test_fraction; rows after it are left out of every split"
    )
    scale: Literal["standard", "minmax", "none"] = Field(
        "standard", description="per-column scaling fitted on the training rows only; predictions are mapped back"
    )
    missing: Literal["error", "drop", "ffill", "interpolate"] = Field(
        "error", description="empty/NA cells in used columns and missing time steps of a regular date_column: error "
        "(names them), drop the rows (gaps kept as they are), forward-fill, or interpolate (gaps reindexed, then filled)"
    )
    season: int | None = Field(
        None, ge=1, le=1_000_000, description="seasonal period for the seasonal naive baseline; set, it also scales "
        "MASE; null = inferred from date_column's frequency (monthly 12, quarterly 4, weekly 52, daily 7, hourly 24)"
    )
    window_norm: Literal["none", "last", "mean", "mean_std"] = Field(
        "none", description="per-window normalisation: subtract each window's last value or mean (and divide by its "
        "std for mean_std), undone on the outputs"
    )
    target_transform: Literal["none", "diff", "log", "log_diff"] = Field(
        "none", description="the model learns this of the target (changes, logs, log changes); undone before any metric"
    )
    series_column: str | None = Field(
        None, description="column naming the series of a long table (one row per series and time step): each series "
        "is cut, scaled and windowed on its own, one global model learns them all; metrics overall and per series"
    )
    known_future: list[str] | None = Field(
        None, description="columns whose values are known ahead (planned prices, holidays): the model also gets their "
        "values at the H target steps; predict reads them from rows after the last target with an empty target cell"
    )
    calendar: list[Literal[sf.CALENDAR]] | None = Field(  # type: ignore[valid-type]
        None, description="calendar features of date_column's dates as sin/cos pairs (month, quarter, dayofweek, day, "
        "dayofyear, weekofyear, hour, minute), inputs for the window rows and known ahead for the target steps"
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- shared by training and `lstmctl predict`


def _where(path: Path, name: str | None) -> str:
    return path.name if name is None else f"{path.name} (series {name!r})"


def _groups(path: Path, header, body, p: TabularParams) -> list[tuple[str | None, list, list[int] | None]]:
    """(series id, its rows, their lines in the file) per series of a long table; one (None, body, None) otherwise."""
    if not p.series_column:
        return [(None, body, None)]
    s_col = column(path, header, p.series_column, "series_column")
    return [(name, [body[i] for i in idx], (idx + 2).tolist()) for name, idx in many.split_series(path, header, body, s_col)]


def prediction_inputs(p: TabularParams, state: dict, path: Path):
    """Windows over a new CSV, built and scaled exactly as in training (the run's saved scaler).

    Every window of `window` rows gives one forecast of H steps, including the last window, whose
    steps lie past the end of the file. Labels name each window's first target row: its date (or row
    number), or `<last date>+h` beyond the end. With a window norm or a target transform a third
    item maps the outputs to the target's units (they depend on each window's own values). A long
    table (data.series_column) gives every series' windows, labelled (series, label), each scaled with
    its own series' scaler (a series the run was not trained on is refused). A known-future run reads the
    steps after the end from the rows after the last target value (target cell empty).
    """
    header, body = read_table(path, p.delimiter)
    columns = state.get("columns") or []
    if p.features:
        features = list(p.features) + [k for k in p.known_future or [] if k not in p.features]
    else:
        features = [c for c in columns if c != p.date_column]
    norm, how = state.get("window_norm", "none"), state.get("target_transform", "none")
    needs_target = norm != "none" or how != "none" or bool(p.known_future or p.calendar)
    used = features + [p.target] if needs_target and p.target not in features else list(features)
    cols = [column(path, header, name, "features" if name in features else "target") for name in used]
    xs, labels, invs, t_scaler = [], [], [], []
    for name, rows, lines in _groups(path, header, body, p):
        if name is None:
            saved = state
        elif name in (state.get("series") or {}):
            saved = state["series"][name]
        else:
            raise UserError(f"{path.name}: series {name!r} was not in this run's training data, so it has no fitted "
                            f"scaler; known series: {', '.join(list(state.get('series') or {})[:8])}")
        offset = np.asarray([saved["offset"][columns.index(c)] for c in used], dtype=np.float64)
        scale = np.asarray([saved["scale"][columns.index(c)] for c in used], dtype=np.float64)
        x, lab, inv = sp.series_inputs(path, header, rows, lines, p, state, used, features, cols, offset, scale,
                                     _where(path, name))
        xs.append(x)
        labels += lab if name is None else [(name, label) for label in lab]
        ti = used.index(p.target) if p.target in used else None
        t_off = float(offset[ti]) if ti is not None else float(saved["offset"][columns.index(p.target)])
        t_scale = float(scale[ti]) if ti is not None else float(saved["scale"][columns.index(p.target)])
        invs.append(inv if name is None else fold_scaler(inv, t_off, t_scale))
        t_scaler.append((t_off, t_scale))
    x_t = torch.from_numpy(np.concatenate(xs).astype(np.float32))
    if not p.series_column and norm == "none" and how == "none":
        return x_t, labels
    inv = np.concatenate(invs)
    t_off, t_scale = t_scaler[0] if not p.series_column else (0.0, 1.0)

    def to_units(out: np.ndarray) -> np.ndarray:
        return sw.invert(np.asarray(out, dtype=np.float64).reshape(len(out), -1), offset=t_off, scale=t_scale,
                         how=how, anchor=inv[:, 0], spread=inv[:, 1], last=inv[:, 2])

    return x_t, labels, to_units


# ---------------------------------------------------------------- the dataset


def _columns(path: Path, header, body, p: TabularParams) -> tuple[list[int], int, int | None, list[int]]:
    """(feature columns, target, date column, known-future columns) of the file, checked; a known-future
    column is always an input too (its past values on the window rows, its known ones on the target steps)."""
    t_col = column(path, header, p.target, "target")
    d_col = column(path, header, p.date_column, "date_column") if p.date_column else None
    s_col = column(path, header, p.series_column, "series_column") if p.series_column else None
    if s_col is not None and s_col in (t_col, d_col):
        raise UserError(f"data.series_column: {p.series_column!r} is also the {'target' if s_col == t_col else 'date_column'}; "
                        "name the column that says which series each row belongs to")
    sf.check_known(path, list(p.known_future or []), header, p.target, p.date_column)
    k_cols = [column(path, header, name, "known_future") for name in p.known_future or []]
    if p.features is None:
        f_cols = [c for c in range(len(header)) if c not in (d_col, s_col) and (c == t_col or is_numeric([r[c] for r in body]))]
    else:
        if not p.features:
            raise UserError("data.features is an empty list; name at least one column, or leave it out to use every numeric column")
        f_cols = [column(path, header, name, "features") for name in p.features]
        if d_col is not None and d_col in f_cols:
            raise UserError(f"data.features: {header[d_col]!r} is the date_column; it cannot also be a feature")
        if s_col is not None and s_col in f_cols:
            raise UserError(f"data.features: {header[s_col]!r} is the series_column; it cannot also be a feature")
    return f_cols + [c for c in k_cols if c not in f_cols], t_col, d_col, k_cols


def _saved(saved: dict, names: list[str], name: str | None) -> dict:
    """A reopened run's fitted numbers for one series: its scaler (when the columns match) and MASE scale."""
    if name is not None:
        one = (saved.get("series") or {}).get(name)
        return dict(one) if one and saved.get("columns") == names else {}
    out = {k: saved[k] for k in ("offset", "scale") if saved.get("columns") == names and "offset" in saved}
    return out | ({"mase_scale": saved["mase_scale"]} if "mase_scale" in saved else {})


@register_dataset("tabular", TabularParams, prediction_inputs=prediction_inputs)
def build_tabular(p: TabularParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Sliding windows over a CSV time series: `window` rows of features -> the target's next `horizon` rows."""
    path = Path(p.path).expanduser()
    header, body = read_table(path, p.delimiter)
    f_cols, t_col, d_col, k_cols = _columns(path, header, body, p)
    used = list(dict.fromkeys(f_cols + [t_col]))  # feature columns, then the target if not among them
    names = [header[c] for c in used]
    values_all = numeric_columns(path, header, body, used, "used")
    saved = state or {}
    # old runs (their data state has no "steps") predicted one value `horizon` rows ahead
    steps = saved.get("steps") or (list(range(1, p.horizon + 1)) if not saved else [p.horizon])
    ti = names.index(p.target)
    f_idx = [names.index(header[c]) for c in f_cols]
    features = [names[i] for i in f_idx]
    known = sp.known_channels(p, features) if p.known_future or p.calendar else []
    series = []  # per series: (id, axis, values, kept rows, calendar channels)
    for name, rows, lines in _groups(path, header, body, p):
        axis = sp.axis_of(path, header, rows, p, lines)
        v = values_all if name is None else values_all[np.asarray(lines) - 2]
        v, kept = handle_missing(place(v, axis) if axis else v, names, p.missing, path, lines)
        cal = None
        if p.calendar:
            cal = sf.calendar_features(sf.calendar_stamps(axis, p.date_column, _where(path, name)), list(p.calendar))[kept]
        series.append((name, axis, v, kept, cal))
    longest = max(len(s[2]) for s in series)
    pieces: list[Piece] = []
    for name, axis, v, kept, cal in series:
        season = p.season if p.season is not None else (axis.season if axis else None)
        pieces.append(build_piece(v, names, f_idx, ti, p, steps, val_fraction, season, where=_where(path, name),
                                  saved=_saved(saved, names, name), calendar=cal, known=known, many=name is not None,
                                  shift=longest - len(v)))
    sha = _sha256(path)
    if saved.get("source_sha256") not in (None, sha):
        raise UserError(
            f"{path} changed since this run was trained (its sha256 differs); restore the file or train a new run"
        )
    dates = [[axis.labels[int(k)] for k in kept] if axis else None for _, axis, _, kept, _ in series]
    L = max(range(len(pieces)), key=lambda j: pieces[j].n)  # the longest series (the only one of a plain file)
    top = pieces[L]
    state_out = {
        "scaler": p.scale,
        "columns": names,
        **({} if p.series_column else {
            "offset": top.offset.tolist(),
            "scale": top.scale.tolist(),
        }),
        "target": p.target,
        **({} if p.series_column else {
            "target_scale": {"scale": [float(top.scale[ti])], "offset": [float(top.offset[ti])]},
            "input_scale": {"scale": top.scale[f_idx].tolist(), "offset": top.offset[f_idx].tolist()},  # raw arrays (API)
            "mase_scale": top.mase_scale,
        }),
        "rows": {"total": top.n, "train": top.n_tr, "val": top.n_val, "test": top.n_end - top.n_fit},
        "steps": steps,
        "window_norm": p.window_norm,
        "target_transform": p.target_transform,
        "season": top.season,
        "source": str(path),
        "source_sha256": sha,
    }
    if p.known_future or p.calendar:
        state_out.update(known_future=list(p.known_future or []), calendar=list(p.calendar or []))
    extra: dict = {}
    if p.series_column:
        ids = [s[0] for s in series]
        splits, split_rows, split_dates, member, split_inv, split_base, members = many.pool(pieces, ids, dates)
        state_out["series_column"] = p.series_column
        state_out["series"] = {n: {"offset": pc.offset.tolist(), "scale": pc.scale.tolist(), "mase_scale": pc.mase_scale,
                                   "rows": {"total": pc.n, "train": pc.n_tr, "val": pc.n_val, "test": pc.n_end - pc.n_fit}}
                               for n, pc in zip(ids, pieces)}
        seasons = {pc.season for pc in pieces}
        extra = dict(members=members, member=member, series_column=p.series_column)
        season, mase_scale, t_off, t_scale = (seasons.pop() if len(seasons) == 1 else None), None, 0.0, 1.0
    else:
        splits = {k: Split(torch.from_numpy(top.x[k].astype(np.float32)), torch.from_numpy(top.t[k].astype(np.float32)))
                  if k in top.x else None for k in ("train", "val", "test")}
        split_rows = top.rows
        split_dates = {k: [dates[0][r] for r in rws] for k, rws in top.rows.items()} if dates[0] is not None else {}
        split_inv = {k: torch.from_numpy(v) for k, v in top.inverse.items()}
        split_base = {k: {s: torch.from_numpy(v.astype(np.float32)) for s, v in d.items()} for k, d in top.base.items()}
        season, mase_scale, t_off, t_scale = top.season, top.mase_scale, float(top.offset[ti]), float(top.scale[ti])
    return DataBundle(
        task=Task.REGRESSION_SEQ,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=int(splits["test"].x.shape[-1]),
        output_size=len(steps),
        facts=SeriesFacts(
            target=p.target, features=features, window=p.window, horizon=p.horizon,
            series=top.y.tolist(), dates=dates[L], date_column=p.date_column, rows=split_rows,
            split_dates=split_dates, val_start=top.n_tr, test_start=top.n_fit, naive=split_base["naive"],
            mase_scale=mase_scale, steps=steps, baselines=split_base, season=season,
            freq=series[L][1].freq if series[L][1] else None, target_offset=t_off, target_scale=t_scale,
            transform=p.target_transform, window_norm=p.window_norm, inverse=split_inv,
            known_future=list(p.known_future or []), calendar=list(p.calendar or []), **extra,
        ),
        state=state_out,
        target_names=None if len(steps) == 1 else [f"{p.target}_h{s}" for s in steps],
    )
