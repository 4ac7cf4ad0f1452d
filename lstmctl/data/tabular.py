"""tabular: sliding windows over a CSV time series, split chronologically, H steps forecast at once.

A window is `window` consecutive rows of the feature columns; its targets are the target column's
next `horizon` rows (direct multi-output; horizon 1 = the next row). Rows are split in time order
into train | val | test (val = the last `train.val_fraction` of the non-test rows); a window belongs
to the split that holds ALL its target rows (windows straddling two blocks are dropped), so no target
of a val/test window is ever seen in training, and val/test windows may look back into earlier rows
for context (that is the past, known at forecast time). The scaler is fitted on the training rows
alone and saved in the run as plain numbers (data_state.json). Reading: series_read.py; windows,
baselines and the reversible transforms: series_windows.py (docs/forecasting.md).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lstmctl.data.base import DataBundle, Split, Task
from lstmctl.data import series_windows as sw
from lstmctl.data.facts import SeriesFacts
from lstmctl.data.series_read import (TimeAxis, column, handle_missing, is_numeric, numeric_columns, place, read_table,
                                      time_axis)
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
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator")


def fit_scaler(values: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) per column such that scaled = (x - offset) / scale; constant columns get scale 1."""
    if how == "standard":
        offset, scale = values.mean(axis=0), values.std(axis=0)
    elif how == "minmax":
        offset, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
    else:
        offset, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    return offset, scale


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- shared by training and `lstmctl predict`


def _axis(path: Path, header, body, p: TabularParams) -> TimeAxis | None:
    if not p.date_column or p.date_column not in header:
        return None
    c = header.index(p.date_column)
    return time_axis(path, p.date_column, [r[c] for r in body], p.missing)


def _norm(X: np.ndarray, target_windows: np.ndarray, how: str):
    """Per-window normalisation of inputs (each channel by its own window) and the target's (anchor, spread)."""
    anchor, spread = sw.window_stats(target_windows, how)
    if how != "none":
        a, s = sw.window_stats(X, how)
        X = (X - a[:, None, :]) / s[:, None, :]
    return X, anchor, spread


def prediction_inputs(p: TabularParams, state: dict, path: Path):
    """Windows over a new CSV, built and scaled exactly as in training (the run's saved scaler).

    Every window of `window` rows gives one forecast of H steps, including the last window, whose
    steps lie past the end of the file. Labels name each window's first target row: its date (or row
    number), or `<last date>+h` beyond the end. With a window norm or a target transform a third
    item maps the outputs to the target's units (they depend on each window's own values).
    """
    header, body = read_table(path, p.delimiter)
    columns = state.get("columns") or []
    features = p.features or [c for c in columns if c != p.date_column]
    steps = state.get("steps") or [p.horizon]
    norm, how = state.get("window_norm", "none"), state.get("target_transform", "none")
    needs_target = norm != "none" or how != "none"
    used = features + [p.target] if needs_target and p.target not in features else list(features)
    cols = [column(path, header, name, "features" if name in features else "target") for name in used]
    axis = _axis(path, header, body, p)
    values = numeric_columns(path, header, body, cols, "feature")
    values, kept = handle_missing(place(values, axis) if axis else values, used, p.missing, path)
    first = sw.first_row(how)
    if len(values) < p.window + first:
        raise UserError(f"{path.name}: {len(values)} usable rows but one window needs data.window = {p.window + first}")
    work = values.copy()
    ti = used.index(p.target) if p.target in used else None
    if ti is not None and how != "none":
        work[:, ti] = sw.transform(values[:, ti], how, path.name)
    offset = np.asarray([state["offset"][columns.index(c)] for c in used], dtype=np.float64)
    scale = np.asarray([state["scale"][columns.index(c)] for c in used], dtype=np.float64)
    scaled = (work - offset) / scale
    starts = np.arange(first, len(scaled) - p.window + 1, p.stride)
    idx = starts[:, None] + np.arange(p.window)[None, :]
    x = scaled[idx][:, :, : len(features)]
    origins = starts + p.window - 1
    labels = []
    end = len(kept) - 1
    for o in origins:
        target = int(o) + steps[0]
        if target <= end:
            labels.append(axis.labels[target] if axis else str(int(kept[target])))
        else:
            labels.append(f"{axis.labels[end] if axis else str(int(kept[end]))}+{target - end}")
    x_t = torch.from_numpy(x.astype(np.float32))
    if not needs_target:
        return x_t, labels
    x, anchor, spread = _norm(x, scaled[idx][:, :, ti], norm)
    last = values[origins, ti]
    t_off, t_scale = float(offset[ti]), float(scale[ti])

    def to_units(out: np.ndarray) -> np.ndarray:
        return sw.invert(np.asarray(out, dtype=np.float64).reshape(len(out), -1), offset=t_off, scale=t_scale,
                         how=how, anchor=anchor, spread=spread, last=last)

    return torch.from_numpy(x.astype(np.float32)), labels, to_units


# ---------------------------------------------------------------- the dataset


@register_dataset("tabular", TabularParams, prediction_inputs=prediction_inputs)
def build_tabular(p: TabularParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Sliding windows over a CSV time series: `window` rows of features -> the target's next `horizon` rows."""
    path = Path(p.path).expanduser()
    header, body = read_table(path, p.delimiter)
    t_col = column(path, header, p.target, "target")
    d_col = column(path, header, p.date_column, "date_column") if p.date_column else None
    if p.features is None:
        f_cols = [c for c in range(len(header)) if c != d_col and (c == t_col or is_numeric([r[c] for r in body]))]
    else:
        if not p.features:
            raise UserError("data.features is an empty list; name at least one column, or leave it out to use every numeric column")
        f_cols = [column(path, header, name, "features") for name in p.features]
        if d_col is not None and d_col in f_cols:
            raise UserError(f"data.features: {header[d_col]!r} is the date_column; it cannot also be a feature")
    used = list(dict.fromkeys(f_cols + [t_col]))  # feature columns, then the target if not among them
    names = [header[c] for c in used]
    values = numeric_columns(path, header, body, used, "used")
    axis = _axis(path, header, body, p)
    values, kept = handle_missing(place(values, axis) if axis else values, names, p.missing, path)
    saved = state or {}
    # old runs (their data state has no "steps") predicted one value `horizon` rows ahead
    steps = saved.get("steps") or (list(range(1, p.horizon + 1)) if not saved else [p.horizon])
    first = sw.first_row(p.target_transform)
    n = len(values)
    need = p.window + p.horizon + first
    plus = " (+1 row that diff uses up)" if first else ""
    if n < need:
        raise UserError(
            f"{path.name}: the series has {n} usable rows but window ({p.window}) + horizon ({p.horizon}){plus} needs {need}; "
            "lower data.window or data.horizon, or use a longer series"
        )
    # chronological row split: [0, n_tr) train, [n_tr, n_fit) val, [n_fit, n_end) test (rows after n_end: none)
    n_fit, n_end = sw.test_block(n, p.test_fraction, p.test_start, p.test_rows, path.name)
    n_test = n_end - n_fit
    n_val = max(1, math.ceil(n_fit * val_fraction)) if val_fraction > 0 else 0
    n_tr = n_fit - n_val
    if n_tr < need:
        raise UserError(
            f"{path.name}: the training part has {n_tr} rows (of {n}) but one window needs window ({p.window}) + "
            f"horizon ({p.horizon}){plus} = {need}; lower data.window, data.test_fraction or train.val_fraction"
        )
    if max(steps) > n_test:
        raise UserError(
            f"{path.name}: data.horizon = {max(steps)} is longer than the test block ({n_test} rows of {n}), so no test "
            f"window has all its targets there; lower data.horizon or raise data.{'test_rows' if p.test_rows else 'test_fraction'}"
        )
    sha = _sha256(path)
    if saved.get("source_sha256") not in (None, sha):
        raise UserError(
            f"{path} changed since this run was trained (its sha256 differs); restore the file or train a new run"
        )
    ti = names.index(p.target)
    y_orig = values[:, ti]
    season = p.season if p.season is not None else (axis.season if axis else None)
    if p.season is not None:
        sw.check_season(p.season, n_tr, path.name)
    elif season is not None and season > n_tr // 2:
        season = None  # an inferred season the training block cannot hold twice: no seasonal baseline
    work = values.copy()
    work[:, ti] = sw.transform(y_orig, p.target_transform, path.name)
    if saved.get("columns") == names and "offset" in saved:
        offset, scale = np.asarray(saved["offset"], dtype=np.float64), np.asarray(saved["scale"], dtype=np.float64)
    else:
        offset, scale = fit_scaler(work[first:n_tr], p.scale)  # training rows only
    scaled = (work - offset) / scale
    f_idx = [names.index(header[c]) for c in f_cols]
    X, Y, origins = sw.make_windows(scaled[:, f_idx], scaled[:, ti], p.window, steps, p.stride, first)
    X, anchor, spread = _norm(X, scaled[:, ti][origins[:, None] - p.window + 1 + np.arange(p.window)], p.window_norm)
    Y = (Y - anchor[:, None]) / spread[:, None]
    base = sw.baselines(y_orig, origins, steps, season if season and season > 1 else None, sw.drift_slope(y_orig[:n_tr]))
    # MASE denominator: in-sample MAE over the training rows of the seasonal naive (data.season set) or the naive
    lag = p.season if p.season is not None and p.season > 1 else steps[0]
    mase_scale = saved["mase_scale"] if "mase_scale" in saved else sw.mase_scale(y_orig[:n_tr], lag)
    inverse = np.stack([anchor, spread, y_orig[origins]], axis=1)

    dates_all = [axis.labels[int(k)] for k in kept] if axis else None
    masks = sw.split_masks(origins, steps, {"train": (0, n_tr), "val": (n_tr, n_fit), "test": (n_fit, n_end)})
    splits, split_rows, split_dates, split_inv = {}, {}, {}, {}
    split_base: dict[str, dict[str, torch.Tensor]] = {k: {} for k in base}
    for name, sel in masks.items():
        if not sel.any():
            if name == "test":
                raise UserError(
                    f"{path.name}: no test windows: the last {n_test} rows hold no window target with stride {p.stride}; "
                    "raise data.test_fraction or lower data.stride"
                )
            splits[name] = None
            continue
        splits[name] = Split(torch.from_numpy(X[sel].astype(np.float32)), torch.from_numpy(Y[sel].astype(np.float32)))
        split_rows[name] = (origins[sel] + steps[0]).tolist()
        for k, v in base.items():
            split_base[k][name] = torch.from_numpy(v[sel].astype(np.float32))
        split_inv[name] = torch.from_numpy(inverse[sel])
        if dates_all is not None:
            split_dates[name] = [dates_all[r] for r in split_rows[name]]
    if val_fraction > 0 and splits["val"] is None:
        raise UserError(
            f"train.val_fraction={val_fraction} gives {n_val} validation rows, which hold no window's {max(steps)} target "
            f"row(s) with stride {p.stride}; raise train.val_fraction or lower data.horizon or data.stride"
        )
    state_out = {
        "scaler": p.scale,
        "columns": names,
        "offset": offset.tolist(),
        "scale": scale.tolist(),
        "target": p.target,
        "target_scale": {"scale": [float(scale[ti])], "offset": [float(offset[ti])]},
        "input_scale": {"scale": scale[f_idx].tolist(), "offset": offset[f_idx].tolist()},  # for raw arrays (API)
        "mase_scale": mase_scale,
        "rows": {"total": n, "train": n_tr, "val": n_val, "test": n_test},
        "steps": steps,
        "window_norm": p.window_norm,
        "target_transform": p.target_transform,
        "season": season,
        "source": str(path),
        "source_sha256": sha,
    }
    return DataBundle(
        task=Task.REGRESSION_SEQ,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=len(f_idx),
        output_size=len(steps),
        facts=SeriesFacts(
            target=p.target, features=[names[i] for i in f_idx], window=p.window, horizon=p.horizon,
            series=y_orig.tolist(), dates=dates_all, date_column=p.date_column, rows=split_rows,
            split_dates=split_dates, val_start=n_tr, test_start=n_fit, naive=split_base["naive"],
            mase_scale=mase_scale, steps=steps, baselines=split_base, season=season,
            freq=axis.freq if axis else None, target_offset=float(offset[ti]), target_scale=float(scale[ti]),
            transform=p.target_transform, window_norm=p.window_norm, inverse=split_inv,
        ),
        state=state_out,
        target_names=None if len(steps) == 1 else [f"{p.target}_h{s}" for s in steps],
    )
