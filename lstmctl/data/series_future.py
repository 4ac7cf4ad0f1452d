"""Known-future inputs of a series: calendar features from the dates, and the extra input steps that carry
what is known of the H target rows (data.known_future columns and the calendar) to the model.

Encoding (docs/forecasting.md, "Known-future inputs and calendar features"): a window of W rows becomes
W + H input steps. The first W are the window's rows as always; the H appended steps are the target rows,
where the known-future channels (those columns, and the calendar's) hold their values at those rows and
every other channel (the target's past, other features) is 0; one extra channel flags the appended steps
(0 on the window's rows, 1 on the target steps). So each column keeps ONE channel whatever H, its future
values arrive in time order right after its past ones, and the recurrence reads them as the
continuation of the series; a model's final state has seen every target step's known inputs.

Calendar features are sin/cos pairs (2 channels each): smooth, bounded in [-1, 1] (not scaled), December
next to January, and the same two channels whatever the number of categories (one-hot would add 7, 12
or 366 channels). The value v of a feature with period P gives sin(2 pi v / P), cos(2 pi v / P).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lstmctl.data.series_read import TimeAxis
from lstmctl.errors import UserError

CALENDAR = ("month", "quarter", "dayofweek", "day", "dayofyear", "weekofyear", "hour", "minute")


def calendar_values(stamps: pd.DatetimeIndex, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(v, period) per date: the 0-based position of each date in its cycle, read with pandas."""
    if name == "month":
        return np.asarray(stamps.month - 1, float), np.full(len(stamps), 12.0)
    if name == "quarter":
        return np.asarray(stamps.quarter - 1, float), np.full(len(stamps), 4.0)
    if name == "dayofweek":
        return np.asarray(stamps.day_of_week, float), np.full(len(stamps), 7.0)
    if name == "day":
        return np.asarray(stamps.day - 1, float), np.asarray(stamps.days_in_month, float)
    if name == "dayofyear":
        return np.asarray(stamps.day_of_year - 1, float), np.where(stamps.is_leap_year, 366.0, 365.0)
    if name == "weekofyear":
        return np.asarray(stamps.isocalendar().week, float) - 1, np.full(len(stamps), 53.0)
    if name == "hour":
        return np.asarray(stamps.hour, float), np.full(len(stamps), 24.0)
    return np.asarray(stamps.minute, float), np.full(len(stamps), 60.0)


def calendar_names(names: list[str]) -> list[str]:
    return [f"{n}_{f}" for n in names for f in ("sin", "cos")]


def calendar_features(stamps: pd.DatetimeIndex, names: list[str]) -> np.ndarray:
    """(rows, 2 * len(names)): sin and cos of each calendar feature, in the order of `names`."""
    cols = []
    for name in names:
        v, period = calendar_values(stamps, name)
        cols += [np.sin(2 * np.pi * v / period), np.cos(2 * np.pi * v / period)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(stamps), 0))


def calendar_stamps(axis: TimeAxis | None, date_column: str | None, where: str) -> pd.DatetimeIndex:
    """The parsed dates data.calendar derives its features from, or one line saying why there are none."""
    if date_column is None:
        raise UserError("data.calendar needs data.date_column: the calendar features are derived from the parsed dates; "
                        "name the date column, or leave data.calendar out")
    if axis is None or axis.stamps is None:
        raise UserError(f"{where}: data.calendar needs dates in data.date_column {date_column!r}, which holds labels "
                        "that are not dates (plain labels or integer years); leave data.calendar out")
    return axis.stamps


def future_stamps(axis: TimeAxis, steps: int, where: str) -> pd.DatetimeIndex:
    """The dates of the `steps` rows after the last one, from the date column's frequency."""
    if not axis.freq or axis.stamps is None:
        raise UserError(f"{where}: the dates have no regular frequency, so the calendar of the steps after the end "
                        "is unknown; add those rows with their dates and an empty target cell")
    return pd.date_range(axis.stamps[-1], periods=steps + 1, freq=axis.freq)[1:]


def with_future(X: np.ndarray, M: np.ndarray, origins: np.ndarray, steps: list[int], known: list[int],
                a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(N, W, C) windows -> (N, W + H, C + 1): the H target steps appended with the `known` channels of M
    (rows, C) at origin + step, normalised by each window's own (a, s) (N, C), the rest 0, and a flag channel."""
    n, w, c = X.shape
    fut = np.zeros((n, len(steps), c))
    rows = origins[:, None] + np.asarray(steps)[None, :]
    k = np.asarray(known, dtype=np.int64)
    fut[:, :, k] = (M[rows][:, :, k] - a[:, None, k]) / s[:, None, k]
    flag = np.concatenate([np.zeros((n, w, 1)), np.ones((n, len(steps), 1))], axis=1)
    return np.concatenate([np.concatenate([X, fut], axis=1), flag], axis=2)


def check_known(path: Path, known: list[str], header: list[str], target: str, date_column: str | None) -> None:
    for name in known:
        if name == target:
            raise UserError(f"data.known_future: {name!r} is the target, whose future is what the model predicts; "
                            "list only columns known ahead (planned prices, holidays)")
        if name == date_column:
            raise UserError(f"data.known_future: {name!r} is the date_column; use data.calendar for features of the dates")
