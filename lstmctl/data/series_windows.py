"""Windows, splits, baselines and reversible target transforms of one series, as pure numpy functions.

Everything here takes arrays and a cut (the row bounds of train | val | test), so a rolling-origin
backtest can call the same functions with another cut. Conventions:

- a window's *origin* is its last input row; its targets are the rows origin + s for s in `steps`
  (1..H for a horizon H: direct multi-output);
- a window belongs to the split whose block holds ALL its target rows; a window whose targets
  straddle two blocks is dropped, so no target row of a val/test window is ever a training target;
- the inverse of the target's path (window norm -> scaler -> transform) maps model outputs back to
  the original units, where every metric is computed.
"""

from __future__ import annotations

import numpy as np

from lstmctl.errors import UserError

TRANSFORMS = ("none", "diff", "log", "log_diff")
NORMS = ("none", "last", "mean", "mean_std")


def window_starts(n_rows: int, window: int, last_step: int, stride: int, first: int = 0) -> np.ndarray:
    """First row of every window whose furthest target row (start + window - 1 + last_step) exists."""
    return np.arange(first, n_rows - window - last_step + 1, stride)


def make_windows(feats: np.ndarray, target: np.ndarray, window: int, steps: list[int], stride: int, first: int = 0):
    """X: (N, window, F), Y: (N, len(steps)), origin row per window."""
    starts = window_starts(len(feats), window, max(steps), stride, first)
    idx = starts[:, None] + np.arange(window)[None, :]
    origins = starts + window - 1
    return feats[idx], target[origins[:, None] + np.asarray(steps)[None, :]], origins


def split_masks(origins: np.ndarray, steps: list[int], bounds: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """Per split, the windows all of whose target rows lie in its block [lo, hi)."""
    lo_t, hi_t = origins + min(steps), origins + max(steps)
    return {name: (lo_t >= lo) & (hi_t < hi) for name, (lo, hi) in bounds.items()}


def test_block(n: int, fraction: float, start: int | None, rows: int | None, where: str) -> tuple[int, int]:
    """[first, end) rows of the test block: data.test_start / data.test_rows when set (a backtest fold's
    cut), else the last `fraction` of the n rows. Rows from `end` on belong to no split."""
    if start is None:
        size = rows if rows is not None else max(1, round(n * fraction))
        if size >= n:
            raise UserError(f"{where}: data.test_rows = {size} leaves no rows before the test block (the series has {n}); lower it")
        return n - size, n
    end = n if rows is None else start + rows
    if end > n:
        raise UserError(
            f"{where}: the test block data.test_start = {start} + data.test_rows = {rows} ends past the series' "
            f"{n} usable rows; lower data.test_start or data.test_rows"
        )
    return start, end


# ---------------------------------------------------------------- transforms of the target


def transform(y: np.ndarray, how: str, where: str) -> np.ndarray:
    """The target in the model's units before scaling; diff leaves row 0 NaN (no windows start there)."""
    if how in ("log", "log_diff"):
        bad = np.flatnonzero(~(y > 0))
        if len(bad):
            raise UserError(
                f"{where}: data.target_transform: {how} needs positive values, but row {int(bad[0]) + 1} holds "
                f"{y[bad[0]]:g}; use diff or none, or shift the column"
            )
        y = np.log(y)
    if how in ("diff", "log_diff"):
        y = np.concatenate([[np.nan], np.diff(y)])
    return y


def first_row(how: str) -> int:
    return 1 if how in ("diff", "log_diff") else 0


def window_stats(win: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(anchor, spread) of each window's rows, (N, W[, F]) -> (N[, F]): what window_norm subtracts and divides by."""
    if how == "none":
        return np.zeros(win.shape[:1] + win.shape[2:]), np.ones(win.shape[:1] + win.shape[2:])
    anchor = win[:, -1] if how == "last" else win.mean(axis=1)
    spread = win.std(axis=1) if how == "mean_std" else np.ones_like(anchor)
    return anchor, np.where(spread > 1e-8, spread, 1.0)


def invert(out: np.ndarray, *, offset: float, scale: float, how: str, anchor: np.ndarray, spread: np.ndarray,
           last: np.ndarray) -> np.ndarray:
    """Model outputs (N, H) -> the target's own units: undo the window norm, the scaler, the transform.

    `anchor`, `spread`: each window's norm (scaled units); `last`: the target's original value at each
    window's origin (what diff forecasts add their cumulative changes to)."""
    z = out * spread[:, None] + anchor[:, None]
    t = z * scale + offset
    if how == "log":
        return np.exp(t)
    if how == "diff":
        return last[:, None] + np.cumsum(t, axis=1)
    if how == "log_diff":
        return np.exp(np.log(last)[:, None] + np.cumsum(t, axis=1))
    return t


# ---------------------------------------------------------------- baselines


def check_season(season: int | None, n_train: int, where: str) -> None:
    if season is not None and season > n_train:
        raise UserError(
            f"{where}: data.season = {season} is longer than the training block ({n_train} rows): the seasonal "
            "naive forecast has no past season to copy; lower data.season or use a longer series"
        )


def baselines(y: np.ndarray, origins: np.ndarray, steps: list[int], season: int | None, slope: float) -> dict[str, np.ndarray]:
    """Forecasts (N, H) of each baseline from each window's origin, in the target's own units.

    naive: the origin's value; snaive: the value one season before each target row (NaN where that
    lies before the series); drift: the origin's value plus h times the training block's slope."""
    h = np.asarray(steps)[None, :]
    o = origins[:, None]
    out = {"naive": np.repeat(y[origins][:, None], len(steps), axis=1), "drift": y[o] + h * slope}
    if season:
        src = o + h - season * ((h - 1) // season + 1)
        out["snaive"] = np.where(src >= 0, y[np.clip(src, 0, None)], np.nan)
    return out


def drift_slope(train: np.ndarray) -> float:
    """The line from the first to the last training value: its change per row."""
    return float((train[-1] - train[0]) / (len(train) - 1)) if len(train) > 1 else 0.0


def mase_scale(train: np.ndarray, lag: int) -> float | None:
    """In-sample MAE of the forecast `lag` rows back (naive: 1 or the legacy horizon; seasonal: the season)."""
    return float(np.abs(train[lag:] - train[:-lag]).mean()) if len(train) > lag else None
