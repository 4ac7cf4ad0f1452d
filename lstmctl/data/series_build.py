"""One series' windows, split by its own train | val | test cut: what build_tabular makes of a single-series
file, and of each series of a long table (data.series_column) before the series' windows are pooled.

Each series gets its own cut (its last test_fraction of rows is its test block, and so on), its own
scaler fitted on its own training rows, its own baselines and MASE scale; windows never cross series,
because each is cut from one series' rows alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lstmctl.data import series_future as sf
from lstmctl.data import series_windows as sw
from lstmctl.errors import UserError

SPLITS = ("train", "val", "test")


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


def norm(X: np.ndarray, target_windows: np.ndarray, how: str):
    """Per-window normalisation of inputs (each channel by its own window), the target's (anchor, spread),
    and the inputs' own (anchor, spread) per channel (N, C) for the known-future steps."""
    anchor, spread = sw.window_stats(target_windows, how)
    a, s = sw.window_stats(X, how)
    if how != "none":
        X = (X - a[:, None, :]) / s[:, None, :]
    return X, anchor, spread, a, s


@dataclass
class Piece:
    """One series' windows per split (only the splits that have windows) and what it fitted."""

    y: np.ndarray  # the target in its own units, row by row
    n: int
    n_tr: int
    n_val: int
    n_fit: int
    n_end: int
    offset: np.ndarray
    scale: np.ndarray
    mase_scale: float | None
    season: int | None
    ti: int  # the target's column among the used ones (its offset and scale)
    x: dict[str, np.ndarray] = field(default_factory=dict)
    t: dict[str, np.ndarray] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)
    inverse: dict[str, np.ndarray] = field(default_factory=dict)  # (N, 3): anchor, spread, origin value
    base: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def build_piece(values: np.ndarray, names: list[str], f_idx: list[int], ti: int, p, steps: list[int], val_fraction: float,
                season: int | None, *, where: str, saved: dict | None, calendar: np.ndarray | None,
                known: list[int], many: bool, shift: int = 0) -> Piece:
    """Windows of one series. `values` (n, U): its used columns; `saved`: its fitted offset/scale/mase_scale
    (a reopened run), else fitted here; `calendar` (n, C): calendar channels appended to the features;
    `known`: the channels (of features + calendar) whose values at the target rows are appended as steps;
    `shift`: how many rows shorter than a long table's longest series this one is."""
    first = sw.first_row(p.target_transform)
    n = len(values)
    need = p.window + p.horizon + first
    plus = " (+1 row that diff uses up)" if first else ""
    if n < need:
        raise UserError(
            f"{where}: the series has {n} usable rows but window ({p.window}) + horizon ({p.horizon}){plus} needs {need}; "
            "lower data.window or data.horizon, or use a longer series"
        )
    # chronological row split: [0, n_tr) train, [n_tr, n_fit) val, [n_fit, n_end) test (rows after n_end: none)
    # a long table's data.test_start counts rows of its longest series, the series aligned at their ends (shift)
    start = None if p.test_start is None else p.test_start - shift
    n_fit, n_end = sw.test_block(n, p.test_fraction, start, p.test_rows, where)
    n_test = n_end - n_fit
    n_val = max(1, math.ceil(n_fit * val_fraction)) if val_fraction > 0 else 0
    n_tr = n_fit - n_val
    if n_tr < need:
        raise UserError(
            f"{where}: the training part has {n_tr} rows (of {n}) but one window needs window ({p.window}) + "
            f"horizon ({p.horizon}){plus} = {need}; lower data.window, data.test_fraction or train.val_fraction"
        )
    if max(steps) > n_test:
        raise UserError(
            f"{where}: data.horizon = {max(steps)} is longer than the test block ({n_test} rows of {n}), so no test "
            f"window has all its targets there; lower data.horizon or raise data.{'test_rows' if p.test_rows else 'test_fraction'}"
        )
    y_orig = values[:, ti]
    if p.season is not None:
        sw.check_season(p.season, n_tr, where)
    elif season is not None and season > n_tr // 2:
        season = None  # an inferred season the training block cannot hold twice: no seasonal baseline
    work = values.copy()
    work[:, ti] = sw.transform(y_orig, p.target_transform, where)
    if saved and "offset" in saved:
        offset, scale = np.asarray(saved["offset"], dtype=np.float64), np.asarray(saved["scale"], dtype=np.float64)
    else:
        offset, scale = fit_scaler(work[first:n_tr], p.scale)  # training rows only
    scaled = (work - offset) / scale
    feats = scaled[:, f_idx] if calendar is None else np.concatenate([scaled[:, f_idx], calendar], axis=1)
    X, Y, origins = sw.make_windows(feats, scaled[:, ti], p.window, steps, p.stride, first)
    X, anchor, spread, a, s = norm(X, scaled[:, ti][origins[:, None] - p.window + 1 + np.arange(p.window)], p.window_norm)
    if known:
        X = sf.with_future(X, feats, origins, steps, known, a, s)
    Y = (Y - anchor[:, None]) / spread[:, None]
    base = sw.baselines(y_orig, origins, steps, season if season and season > 1 else None, sw.drift_slope(y_orig[:n_tr]))
    # MASE denominator: in-sample MAE over the training rows of the seasonal naive (data.season set) or the naive
    lag = p.season if p.season is not None and p.season > 1 else steps[0]
    mase_scale = saved["mase_scale"] if saved and "mase_scale" in saved else sw.mase_scale(y_orig[:n_tr], lag)
    inverse = np.stack([anchor, spread, y_orig[origins]], axis=1)
    piece = Piece(y_orig, n, n_tr, n_val, n_fit, n_end, offset, scale, mase_scale, season, ti)
    masks = sw.split_masks(origins, steps, {"train": (0, n_tr), "val": (n_tr, n_fit), "test": (n_fit, n_end)})
    for name, sel in masks.items():
        if not sel.any():
            if name == "test":
                raise UserError(
                    f"{where}: no test windows: the last {n_test} rows hold no window target with stride {p.stride}; "
                    "raise data.test_fraction or lower data.stride"
                )
            continue
        piece.x[name], piece.t[name] = X[sel], Y[sel]
        piece.rows[name] = (origins[sel] + steps[0]).tolist()
        piece.inverse[name] = inverse[sel]
        for k, v in base.items():
            piece.base.setdefault(k, {})[name] = v[sel]
    if val_fraction > 0 and "val" not in piece.x:
        raise UserError(
            (f"{where}: " if many else "")
            + f"train.val_fraction={val_fraction} gives {n_val} validation rows, which hold no window's {max(steps)} target "
            f"row(s) with stride {p.stride}; raise train.val_fraction or lower data.horizon or data.stride"
        )
    return piece


def fold_scaler(inverse: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """A series' (anchor, spread, origin value) with its own target scaler folded in, so that pooled windows
    of many series invert with offset 0 and scale 1: (out * spread + anchor) * scale + offset."""
    out = inverse.copy()
    out[:, 0] = inverse[:, 0] * scale + offset
    out[:, 1] = inverse[:, 1] * scale
    return out
