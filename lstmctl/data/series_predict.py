"""`lstmctl predict` on a series file: one series' windows built from a new CSV as training built them,
with the known-future steps after the file's end (series_future.py) read from the rows after its last target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmctl.data import series_future as sf
from lstmctl.data import series_windows as sw
from lstmctl.data.series_build import norm as window_norm
from lstmctl.data.series_read import TimeAxis, handle_missing, numeric_columns, parse_dates, place, time_axis
from lstmctl.errors import UserError


def axis_of(path: Path, header, body, p, lines: list[int] | None = None) -> TimeAxis | None:
    if not p.date_column or p.date_column not in header:
        return None
    c = header.index(p.date_column)
    return time_axis(path, p.date_column, [r[c] for r in body], p.missing, lines)


def known_channels(p, features: list[str]) -> list[int]:
    """The input channels known at the target steps: the known_future columns, then the calendar's."""
    return [features.index(k) for k in p.known_future or []] + [len(features) + k for k in range(2 * len(p.calendar or []))]


def _future(path: Path, header, rows, p, t_col: int, lines) -> int:
    """Where a file for a known-future run ends: the index of its last row with a target value (rows after it,
    their target cell empty, give the known-future values and dates of the steps after the end)."""
    target = numeric_columns(path, header, rows, [t_col], "target")[:, 0]
    have = np.flatnonzero(~np.isnan(target))
    if not len(have):
        raise UserError(f"{path.name}: column {p.target!r} (target) has no values; the windows need the target's past")
    return int(have[-1])


def series_inputs(path: Path, header, rows, lines, p, state: dict, used, features, cols, offset, scale,
                   where: str):
    """(x, labels, (N, 3) anchor/spread/origin value) of one series of a new file, built as in training."""
    steps = state.get("steps") or [p.horizon]
    norm, how = state.get("window_norm", "none"), state.get("target_transform", "none")
    future = bool(p.known_future or p.calendar)
    ti = used.index(p.target) if p.target in used else None
    fut: list = []
    if future:
        end = _future(path, header, rows, p, cols[ti], lines)
        rows, fut = rows[: end + 1], rows[end + 1:]
    axis = axis_of(path, header, rows, p, lines)
    values = numeric_columns(path, header, rows, cols, "feature")
    values, kept = handle_missing(place(values, axis) if axis else values, used, p.missing, path, lines)
    first = sw.first_row(how)
    if len(values) < p.window + first:
        raise UserError(f"{where}: {len(values)} usable rows but one window needs data.window = {p.window + first}")
    work = values.copy()
    if ti is not None and how != "none":
        work[:, ti] = sw.transform(values[:, ti], how, path.name)
    scaled = (work - offset) / scale
    feats = scaled[:, : len(features)]
    if p.calendar:
        feats = np.concatenate([feats, sf.calendar_features(sf.calendar_stamps(axis, p.date_column, where)[kept],
                                                            list(p.calendar))], axis=1)
    starts = np.arange(first, len(scaled) - p.window + 1, p.stride)
    idx = starts[:, None] + np.arange(p.window)[None, :]
    x = feats[idx]
    origins = starts + p.window - 1
    end = len(kept) - 1
    fut_labels = [r[header.index(p.date_column)].strip() for r in fut] if p.date_column and fut else []
    labels = []
    for o in origins:
        target = int(o) + steps[0]
        if target <= end:
            labels.append(axis.labels[target] if axis else str(int(kept[target])))
        elif target - end <= len(fut_labels):
            labels.append(fut_labels[target - end - 1])
        else:
            labels.append(f"{axis.labels[end] if axis else str(int(kept[end]))}+{target - end}")
    if ti is not None:
        x, anchor, spread, a, s = window_norm(x, scaled[idx][:, :, ti], norm)
    else:
        anchor, spread = np.zeros(len(x)), np.ones(len(x))
        a, s = np.zeros(x.shape[::2]), np.ones(x.shape[::2])
    if future:
        x = sf.with_future(x, np.concatenate([feats, _ahead(path, header, fut, p, axis, features, cols, offset, scale,
                                                              max(steps), where)]), origins, steps, known_channels(p, features), a, s)
    last = values[origins, ti] if ti is not None else np.zeros(len(origins))
    return x, labels, np.stack([anchor, spread, last], axis=1)


def _ahead(path: Path, header, fut, p, axis, features, cols, offset, scale, h: int, where: str) -> np.ndarray:
    """(h, channels) of the steps after the file's last target: the known-future columns from the rows after it
    (scaled as in training), the calendar from their dates (or the date column's frequency); the rest 0."""
    known = list(p.known_future or [])
    if known and len(fut) < h:
        raise UserError(
            f"{where}: this run takes known-future inputs (data.known_future: {', '.join(known)}), so forecasting past "
            f"the end needs the {h} rows after the last target value, with their known values and an empty target cell "
            f"({len(fut)} given); add them, or cut the file where the known values end"
        )
    out = np.zeros((h, len(features) + 2 * len(p.calendar or [])))
    if known and h:
        k_idx = [features.index(k) for k in known]
        vals = numeric_columns(path, header, fut[:h], [cols[i] for i in k_idx], "known_future")
        bad = np.argwhere(np.isnan(vals))
        if len(bad):
            raise UserError(f"{where}: the step {int(bad[0][0]) + 1} after the last target value has no value in "
                            f"{known[int(bad[0][1])]!r} (data.known_future); fill it")
        out[:, k_idx] = (vals - offset[k_idx]) / scale[k_idx]
    if p.calendar:
        stamps = None
        if len(fut) >= h and p.date_column:
            stamps = parse_dates([r[header.index(p.date_column)] for r in fut[:h]])
        if stamps is None:
            stamps = sf.future_stamps(axis, h, where)
        out[:, len(features):] = sf.calendar_features(stamps, list(p.calendar))
    return out
