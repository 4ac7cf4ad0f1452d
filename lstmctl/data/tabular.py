"""tabular: Keras-style sliding windows over a CSV time series, split chronologically.

A window is `window` consecutive rows of the feature columns; its target is the target column
`horizon` rows after the window's last row. Rows are split in time order into train | val | test
(val = the last `train.val_fraction` of the non-test rows); a window belongs to the split that holds
its target row, so no window's target is ever seen in training, and val/test windows may look back
into earlier rows for context (that is the past, known at forecast time). The scaler is fitted on
the training rows alone and saved in the run as plain numbers (data_state.json).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lstmctl.data.base import DataBundle, Split, Task
from lstmctl.data.facts import SeriesFacts
from lstmctl.errors import UserError
from lstmctl.registry import register_dataset
from lstmctl.schema import Strict

MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "?"}


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
    horizon: int = Field(1, ge=1, le=1_000_000, description="predict the target this many rows after the window's last row")
    stride: int = Field(1, ge=1, le=1_000_000, description="rows between the starts of consecutive windows")
    date_column: str | None = Field(None, description="column holding dates or labels: the x axis of plots (not a feature)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="last share of the rows whose targets form the test split")
    scale: Literal["standard", "minmax", "none"] = Field(
        "standard", description="per-column scaling fitted on the training rows only; predictions are mapped back"
    )
    missing: Literal["error", "drop", "ffill", "interpolate"] = Field(
        "error", description="empty/NA cells in used columns: error (names them), drop the rows, forward-fill, or interpolate"
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator")


# ---------------------------------------------------------------- reading


def read_table(path: Path, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file as strings; ragged rows and empty files are UserErrors."""
    if not path.exists():
        raise UserError(f"data.path: CSV file not found: {path} (relative paths are relative to the config file's folder)")
    if not path.is_file():
        raise UserError(f"data.path: {path} is not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, delimiter=delimiter) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    except csv.Error as e:
        raise UserError(f"{path}: cannot parse CSV: {e}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not rows:
        raise UserError(f"{path} is empty: expected a header row naming the columns, then one row per time step")
    header = [h.strip() for h in rows[0]]
    if len(rows) == 1:
        raise UserError(f"{path} has a header ({', '.join(header)}) but no data rows")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise UserError(f"{path}: column name {dup[0]!r} appears more than once in the header; rename one")
    body = rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise UserError(
                f"{path} line {i + 2}: {len(r)} fields but the header has {len(header)}; fix that row "
                f"(or set data.delimiter if the file is not comma-separated)"
            )
    return header, body


def _column(path: Path, header: list[str], name: str, what: str) -> int:
    if name in header:
        return header.index(name)
    hint = difflib.get_close_matches(name, header, n=1)
    also = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise UserError(f"data.{what}: column {name!r} is not in {path.name}{also}; columns: {', '.join(header)}")


def _parse_number(cell: str) -> float | None:
    """float, NaN for a missing cell, None for text."""
    s = cell.strip()
    if s.lower() in MISSING_TOKENS:
        return math.nan
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else math.nan


def numeric_columns(path: Path, header, body, cols: list[int], what: str) -> np.ndarray:
    out = np.empty((len(body), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        for i, r in enumerate(body):
            v = _parse_number(r[c])
            if v is None:
                raise UserError(
                    f"{path.name}: column {header[c]!r} ({what}) is not numeric: line {i + 2} holds {r[c].strip()!r}; "
                    "pick numeric columns in data.features/data.target (a date column goes in data.date_column)"
                )
            out[i, j] = v
    return out


def handle_missing(values: np.ndarray, names: list[str], how: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Returns (values without NaN, kept row indices)."""
    bad = np.isnan(values)
    rows = np.arange(len(values))
    if not bad.any():
        return values, rows
    if how == "error":
        where = np.argwhere(bad)[:3]
        cells = ", ".join(f"line {r + 2} column {names[c]!r}" for r, c in where)
        n = int(bad.sum())
        raise UserError(
            f"{path.name}: {n} missing value{'s' * (n > 1)} in used columns, first at {cells}; "
            "set data.missing to drop, ffill or interpolate"
        )
    for c in range(values.shape[1]):
        if bad[:, c].all():
            raise UserError(f"{path.name}: column {names[c]!r} has no values at all; leave it out of data.features")
    if how == "drop":
        keep = ~bad.any(axis=1)
        return values[keep], rows[keep]
    out = values.copy()
    for c in range(values.shape[1]):
        col = out[:, c]
        ok = ~np.isnan(col)
        if how == "interpolate":  # linear between neighbours; ends take the nearest value
            col[~ok] = np.interp(rows[~ok], rows[ok], col[ok])
        else:  # ffill; leading gaps take the first value there is
            idx = np.where(ok, rows, 0)
            np.maximum.accumulate(idx, out=idx)
            first = int(np.argmax(ok))
            idx[:first] = first
            out[:, c] = col[idx]
    return out, rows


# ---------------------------------------------------------------- windows


def window_starts(n_rows: int, window: int, horizon: int, stride: int) -> np.ndarray:
    """First row of every window whose target row (start + window - 1 + horizon) exists."""
    return np.arange(0, n_rows - window - horizon + 1, stride)


def make_windows(feats: np.ndarray, target: np.ndarray, window: int, horizon: int, stride: int):
    """X: (N, window, F), y: (N,), target row per window."""
    starts = window_starts(len(feats), window, horizon, stride)
    idx = starts[:, None] + np.arange(window)[None, :]
    t_rows = starts + window - 1 + horizon
    return feats[idx], target[t_rows], t_rows


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


# ---------------------------------------------------------------- new inputs for `lstmctl predict`
# (defined before the builder: its registration below hands this function to the registry entry)


def prediction_inputs(p: TabularParams, state: dict, path: Path) -> tuple[torch.Tensor, list[str]]:
    """Windows over a new CSV, built and scaled exactly as in training (the run's saved scaler).

    Every window of `window` rows gives one forecast, including the last window, whose target lies
    `horizon` rows past the end of the file. Labels name the target row: its date (or row number),
    or `<last date>+h` beyond the end.
    """
    header, body = read_table(path, p.delimiter)
    columns = state.get("columns") or []
    features = p.features or [c for c in columns if c != p.date_column]
    f_cols = [_column(path, header, name, "features") for name in features]
    values = numeric_columns(path, header, body, f_cols, "feature")
    values, kept = handle_missing(values, features, p.missing, path)
    if len(values) < p.window:
        raise UserError(f"{path.name}: {len(values)} usable rows but one window needs data.window = {p.window}")
    offset = np.asarray([state["offset"][columns.index(c)] for c in features], dtype=np.float64)
    scale = np.asarray([state["scale"][columns.index(c)] for c in features], dtype=np.float64)
    scaled = (values - offset) / scale
    starts = np.arange(0, len(scaled) - p.window + 1, p.stride)
    x = scaled[starts[:, None] + np.arange(p.window)[None, :]]
    d_col = header.index(p.date_column) if p.date_column and p.date_column in header else None
    labels = []
    for s in starts:
        last = int(kept[s + p.window - 1])
        target = s + p.window - 1 + p.horizon
        if target < len(kept):
            row = int(kept[target])
            labels.append(body[row][d_col].strip() if d_col is not None else str(row))
        else:
            base = body[last][d_col].strip() if d_col is not None else str(last)
            labels.append(f"{base}+{target - (len(kept) - 1)}")
    return torch.from_numpy(x.astype(np.float32)), labels


# ---------------------------------------------------------------- the dataset


@register_dataset("tabular", TabularParams, prediction_inputs=prediction_inputs)
def build_tabular(p: TabularParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Sliding windows over a CSV time series: `window` rows of features -> the target `horizon` rows later."""
    path = Path(p.path).expanduser()
    header, body = read_table(path, p.delimiter)
    t_col = _column(path, header, p.target, "target")
    d_col = _column(path, header, p.date_column, "date_column") if p.date_column else None
    if p.features is None:
        f_cols = []
        for c, name in enumerate(header):
            if c == d_col:
                continue
            if c == t_col or all(_parse_number(r[c]) is not None for r in body):
                f_cols.append(c)
        if t_col not in f_cols:
            f_cols.append(t_col)
    else:
        if not p.features:
            raise UserError("data.features is an empty list; name at least one column, or leave it out to use every numeric column")
        f_cols = [_column(path, header, name, "features") for name in p.features]
        if d_col is not None and d_col in f_cols:
            raise UserError(f"data.features: {header[d_col]!r} is the date_column; it cannot also be a feature")
    used = list(dict.fromkeys(f_cols + [t_col]))  # feature columns, then the target if not among them
    names = [header[c] for c in used]
    values = numeric_columns(path, header, body, used, "used")
    values, kept = handle_missing(values, names, p.missing, path)
    n = len(values)
    need = p.window + p.horizon
    if n < need:
        raise UserError(
            f"{path.name}: the series has {n} usable rows but window ({p.window}) + horizon ({p.horizon}) needs {need}; "
            "lower data.window or data.horizon, or use a longer series"
        )
    # chronological row split: [0, n_tr) train, [n_tr, n_fit) val, [n_fit, n) test
    n_test = max(1, round(n * p.test_fraction))
    n_fit = n - n_test
    n_val = max(1, math.ceil(n_fit * val_fraction)) if val_fraction > 0 else 0
    n_tr = n_fit - n_val
    if n_tr < need:
        raise UserError(
            f"{path.name}: the training part has {n_tr} rows (of {n}) but one window needs window ({p.window}) + "
            f"horizon ({p.horizon}) = {need}; lower data.window, data.test_fraction or train.val_fraction"
        )
    saved = state or {}
    sha = _sha256(path)
    if saved.get("source_sha256") not in (None, sha):
        raise UserError(
            f"{path} changed since this run was trained (its sha256 differs); restore the file or train a new run"
        )
    if saved.get("columns") == names and "offset" in saved:
        offset, scale = np.asarray(saved["offset"], dtype=np.float64), np.asarray(saved["scale"], dtype=np.float64)
    else:
        offset, scale = fit_scaler(values[:n_tr], p.scale)  # training rows only
    scaled = (values - offset) / scale
    f_idx = [names.index(header[c]) for c in f_cols]
    ti = names.index(p.target)
    X, y, t_rows = make_windows(scaled[:, f_idx], scaled[:, ti], p.window, p.horizon, p.stride)
    naive_rows = t_rows - p.horizon  # the last row of each window: the naive forecast's value
    y_orig = values[:, ti]
    naive = y_orig[naive_rows]
    # MASE denominator: mean absolute error of the naive forecast at this horizon over the training rows
    tr = y_orig[:n_tr]
    mase_scale = float(np.abs(tr[p.horizon :] - tr[: -p.horizon]).mean()) if n_tr > p.horizon else None
    if "mase_scale" in saved:
        mase_scale = saved["mase_scale"]

    dates_all = [body[int(k)][d_col].strip() for k in kept] if d_col is not None else None
    bounds = {"train": (0, n_tr), "val": (n_tr, n_fit), "test": (n_fit, n)}
    splits, split_rows, split_dates, split_naive = {}, {}, {}, {}
    for name, (lo, hi) in bounds.items():
        sel = (t_rows >= lo) & (t_rows < hi)
        if not sel.any():
            if name == "test":
                raise UserError(
                    f"{path.name}: no test windows: the last {n_test} rows hold no window target with stride {p.stride}; "
                    "raise data.test_fraction or lower data.stride"
                )
            splits[name] = None
            continue
        splits[name] = Split(
            torch.from_numpy(X[sel].astype(np.float32)), torch.from_numpy(y[sel].astype(np.float32)).unsqueeze(1)
        )
        split_rows[name] = t_rows[sel].tolist()
        split_naive[name] = torch.from_numpy(naive[sel].astype(np.float32)).unsqueeze(1)
        if dates_all is not None:
            split_dates[name] = [dates_all[r] for r in t_rows[sel]]
    if val_fraction > 0 and splits["val"] is None:
        raise UserError(
            f"train.val_fraction={val_fraction} gives {n_val} validation rows, which hold no window target with "
            f"stride {p.stride}; raise train.val_fraction or lower data.stride"
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
        "source": str(path),
        "source_sha256": sha,
    }
    return DataBundle(
        task=Task.REGRESSION_SEQ,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=len(f_idx),
        output_size=1,
        facts=SeriesFacts(
            target=p.target,
            features=[names[i] for i in f_idx],
            window=p.window,
            horizon=p.horizon,
            series=y_orig.tolist(),
            dates=dates_all,
            date_column=p.date_column,
            rows=split_rows,
            split_dates=split_dates,
            val_start=n_tr,
            test_start=n_fit,
            naive=split_naive,
            mase_scale=mase_scale,
        ),
        state=state_out,
    )
