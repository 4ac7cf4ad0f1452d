"""Reading a series CSV: the table, its numeric columns, missing cells, and the time axis (pandas).

The file is tokenised by Python's csv module, which names the line of a ragged row (pandas' parser
silently pads a short row), then held as a pandas DataFrame of strings: numbers are parsed with
`pd.to_numeric`, dates with `pd.to_datetime`, the frequency with `pd.infer_freq`, and gaps are
filled by reindexing to that frequency. Every problem is one UserError line naming the fix.
"""

from __future__ import annotations

import csv
import difflib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstmctl.errors import UserError

MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "?"}
# candidate regular steps, coarsest first (quarterly and yearly as 3 and 12 months, whatever their anchor)
STEPS = (("12MS", None), ("12ME", None), ("3MS", 4), ("3ME", 4), ("MS", 12), ("ME", 12), ("7D", 52), ("D", 7), ("h", 24))
# pd.infer_freq's answer (its prefix) -> the seasonal period: monthly 12, quarterly 4, weekly 52, daily 7, hourly 24
SEASONS = (("Y", None), ("A", None), ("Q", 4), ("BQ", 4), ("M", 12), ("BM", 12), ("SM", 24), ("W", 52), ("B", 5),
           ("D", 7), ("h", 24), ("H", 24))


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


def column(path: Path, header: list[str], name: str, what: str) -> int:
    if name in header:
        return header.index(name)
    hint = difflib.get_close_matches(name, header, n=1)
    also = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise UserError(f"data.{what}: column {name!r} is not in {path.name}{also}; columns: {', '.join(header)}")


def _numbers(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values with NaN for missing or non-finite cells, mask of cells that are text)."""
    s = cells.str.strip()
    missing = s.str.lower().isin(MISSING_TOKENS)
    v = pd.to_numeric(s.where(~missing), errors="coerce").to_numpy(dtype=np.float64, copy=True)
    text = np.isnan(v) & ~missing.to_numpy()
    v[~np.isfinite(v)] = np.nan
    return v, text


def is_numeric(cells: list[str]) -> bool:
    return not _numbers(pd.Series(cells, dtype=object).astype(str))[1].any()


def numeric_columns(path: Path, header, body, cols: list[int], what: str) -> np.ndarray:
    frame = pd.DataFrame(body, columns=range(len(header)), dtype=object)
    out = np.empty((len(body), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        out[:, j], text = _numbers(frame[c].astype(str))
        if text.any():
            i = int(np.argmax(text))
            raise UserError(
                f"{path.name}: column {header[c]!r} ({what}) is not numeric: line {i + 2} holds {body[i][c].strip()!r}; "
                "pick numeric columns in data.features/data.target (a date column goes in data.date_column)"
            )
    return out


def handle_missing(values: np.ndarray, names: list[str], how: str, path: Path,
                   lines: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (values without NaN, kept row indices). `lines`: each row's line in the file (one series of a
    long table), else row i is line i + 2."""
    bad = np.isnan(values)
    rows = np.arange(len(values))
    if not bad.any():
        return values, rows
    if how == "error":
        where = np.argwhere(bad)[:3]
        cells = ", ".join(f"line {lines[r] if lines and r < len(lines) else r + 2} column {names[c]!r}" for r, c in where)
        n = int(bad.sum())
        raise UserError(
            f"{path.name}: {n} missing value{'s' * (n > 1)} in used columns, first at {cells}; "
            "set data.missing to drop, ffill or interpolate"
        )
    for c in range(values.shape[1]):
        if bad[:, c].all():
            raise UserError(f"{path.name}: column {names[c]!r} has no values at all; leave it out of data.features")
    frame = pd.DataFrame(values)
    if how == "drop":
        keep = ~bad.any(axis=1)
        return values[keep], rows[keep]
    if how == "interpolate":  # linear between neighbours; ends take the nearest value
        frame = frame.interpolate(method="linear", limit_direction="both")
    else:  # ffill; leading gaps take the first value there is
        frame = frame.ffill().bfill()
    return frame.to_numpy(dtype=np.float64), rows


# ---------------------------------------------------------------- the time axis


@dataclass
class TimeAxis:
    labels: list[str]  # per row of the (possibly reindexed) series
    freq: str | None  # the regular step (pandas alias), None for plain labels or irregular dates
    season: int | None  # the seasonal period the frequency implies (None: yearly, unknown)
    grid: np.ndarray | None = None  # gaps filled: the position of each file row in the full series
    stamps: pd.DatetimeIndex | None = None  # per row, when the column holds dates (not years or plain labels)


def _parse(cells: list[str]) -> pd.DatetimeIndex | np.ndarray | None:
    """Dates (DatetimeIndex), integer steps such as years (int array), or None when no cell is a date."""
    s = [c.strip() for c in cells]
    if all(re.fullmatch(r"-?\d+", c) for c in s):
        return np.asarray([int(c) for c in s], dtype=np.int64)
    if all(re.fullmatch(r"\d{4}[-\s]?Q[1-4]", c, re.I) for c in s):
        return pd.PeriodIndex([c.replace(" ", "").replace("-", "").upper() for c in s], freq="Q").to_timestamp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.DatetimeIndex(pd.to_datetime(s, format="ISO8601"))
        except (ValueError, TypeError, OverflowError):
            parsed = pd.to_datetime(pd.Series(s), errors="coerce", format="mixed")
    ok = parsed.notna().to_numpy()
    if not ok.any():
        return None
    return pd.DatetimeIndex(parsed), ok  # type: ignore[return-value]  (some cells are not dates)


def _season(freq: str | None) -> int | None:
    if not freq:
        return None
    alias = re.sub(r"^\d+", "", freq).split("-")[0]
    for prefix, season in sorted(SEASONS, key=lambda p: -len(p[0])):
        if alias.startswith(prefix):
            return season
    return None


def time_axis(path: Path, name: str, cells: list[str], missing: str, lines: list[int] | None = None) -> TimeAxis:
    """Parse the date column: bad dates, duplicates, disorder and gaps in a regular series are one line
    each; with data.missing ffill or interpolate, gaps are filled (reindexed to the inferred frequency).
    `lines`: each cell's line in the file (one series of a long table), else cell i is on line i + 2."""
    labels = [c.strip() for c in cells]
    line = (lambda i: lines[i]) if lines else (lambda i: i + 2)  # noqa: E731
    parsed = _parse(cells)
    if parsed is None:
        return TimeAxis(labels, None, None)
    if isinstance(parsed, tuple):
        ok = parsed[1]
        i = int(np.argmin(ok))
        raise UserError(
            f"{path.name}: data.date_column {name!r}: line {line(i)} holds {labels[i]!r}, which is not a date "
            "(other rows are); fix that cell, or leave date_column out"
        )
    keys = parsed.asi8 if isinstance(parsed, pd.DatetimeIndex) else parsed
    dup = pd.Index(keys).duplicated()
    if dup.any():
        i = int(np.argmax(dup))
        j = int(np.flatnonzero(keys == keys[i])[0])
        raise UserError(
            f"{path.name}: duplicate timestamp {labels[i]!r} in {name!r} (lines {line(j)} and {line(i)}); "
            "a series has one row per time step: remove or merge one"
        )
    back = np.flatnonzero(np.diff(keys) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise UserError(
            f"{path.name}: {name!r} is not in time order: line {line(i)} ({labels[i]}) comes after line {line(i - 1)} "
            f"({labels[i - 1]}); sort the file by {name}"
        )
    stamps = parsed if isinstance(parsed, pd.DatetimeIndex) else None
    if len(keys) < 3:
        return TimeAxis(labels, None, None, stamps=stamps)
    if isinstance(parsed, np.ndarray):  # integer steps (years): regular when every gap is one step
        step = int(np.diff(parsed).min())
        full = np.arange(parsed[0], parsed[-1] + 1, step)
        if len(full) == len(parsed) or np.any(np.diff(parsed) % step):
            return TimeAxis(labels, "YS" if len(full) == len(parsed) else None, None)
        return _gaps(path, name, labels, missing, "YS", None, pd.Index(full).get_indexer(parsed), [str(v) for v in full], line)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(parsed)
    if freq is not None:
        return TimeAxis(labels, str(freq), _season(str(freq)), stamps=stamps)
    for alias, season in STEPS:  # the coarsest regular step that holds every date: the rest are gaps
        full = pd.date_range(parsed[0], parsed[-1], freq=alias)
        if len(full) <= 10 * len(parsed) and parsed.isin(full).all():
            fmt = "%Y-%m-%d %H:%M" if alias == "h" else "%Y-%m-%d"
            axis = _gaps(path, name, labels, missing, alias, season, full.get_indexer(parsed), list(full.strftime(fmt)), line)
            axis.stamps = full if axis.grid is not None else parsed
            return axis
    return TimeAxis(labels, None, None, stamps=stamps)  # irregular dates: labels only


def _gaps(path, name, labels, missing, freq, season, positions, full_labels, line=lambda i: i + 2) -> TimeAxis:
    n_gap = len(full_labels) - len(labels)
    if missing == "drop":  # the user keeps the rows there are, irregular spacing and all
        return TimeAxis(labels, None, None)
    if missing == "error":
        first = next(k for k, p in enumerate(positions) if p != k)
        raise UserError(
            f"{path.name}: {n_gap} missing time step{'s' * (n_gap > 1)} in {name!r} (a regular {freq} series), "
            f"the first {full_labels[first]} after line {line(first - 1)} ({labels[first - 1]}); "
            "set data.missing to ffill or interpolate to fill them, or drop to keep the rows as they are"
        )
    out = list(full_labels)
    for k, p in enumerate(positions):
        out[p] = labels[k]  # the file's own spelling where there is a row
    return TimeAxis(out, freq, season, np.asarray(positions, dtype=np.int64))


def place(values: np.ndarray, axis: TimeAxis) -> np.ndarray:
    """The file's rows placed on the full time grid (gap rows NaN, filled by handle_missing)."""
    if axis.grid is None:
        return values
    out = np.full((len(axis.labels), values.shape[1]), np.nan)
    out[axis.grid] = values
    return out


def parse_dates(cells: list[str]) -> pd.DatetimeIndex | None:
    """The cells as dates, or None when they are not all dates (integer years, labels, a bad cell)."""
    parsed = _parse(cells)
    return parsed if isinstance(parsed, pd.DatetimeIndex) else None
