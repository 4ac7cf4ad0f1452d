"""Many series in one long table (data.series_column): the table cut into its series, and their windows pooled.

A long table has one row per series and time step (e.g. columns id, date, value). Each series is read,
cut, scaled and windowed on its own (series_build.build_piece), then the windows of every series are
pooled into one train, one val and one test split for ONE global model. Which series each window comes
from travels in SeriesFacts.member, so eval reports every metric overall and per series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lstmctl.data.base import Split
from lstmctl.data.facts import SeriesMember
from lstmctl.data.series_build import SPLITS, Piece, fold_scaler
from lstmctl.errors import UserError


def split_series(path: Path, header: list[str], body: list[list[str]], s_col: int) -> list[tuple[str, np.ndarray]]:
    """(series id, its rows' indices in the body, in file order) per series, in order of first appearance."""
    ids = pd.Series([r[s_col].strip() for r in body])
    empty = np.flatnonzero(ids.eq("").to_numpy())
    if len(empty):
        raise UserError(f"{path.name}: line {int(empty[0]) + 2} has no value in data.series_column {header[s_col]!r}; "
                        "every row of a long table names its series")
    groups = ids.groupby(ids, sort=False).indices
    if len(groups) == len(body):
        raise UserError(
            f"{path.name}: data.series_column {header[s_col]!r} holds a different value on every row ({len(body)} series "
            "of one row each); it must name the series of a long table (one row per series and time step): pick "
            "the id column, or leave data.series_column out for one series"
        )
    return [(str(k), np.asarray(v, dtype=np.int64)) for k, v in groups.items()]


def pool(pieces: list[Piece], names: list[str], dates: list[list[str] | None]) -> tuple:
    """The pieces' windows concatenated per split: (splits, rows, split_dates, member, inverse, baselines) and the
    members. Each series' target scaler is folded into its windows' inverse (fold_scaler)."""
    splits: dict[str, Split | None] = {}
    rows: dict[str, list[int]] = {}
    split_dates: dict[str, list[str]] = {}
    member: dict[str, list[int]] = {}
    inverse: dict[str, torch.Tensor] = {}
    kinds = sorted({k for piece in pieces for k in piece.base})
    base: dict[str, dict[str, torch.Tensor]] = {k: {} for k in kinds}
    for name in SPLITS:
        have = [(j, piece) for j, piece in enumerate(pieces) if name in piece.x]
        if not have:
            splits[name] = None
            continue
        x = np.concatenate([piece.x[name] for _, piece in have])
        y = np.concatenate([piece.t[name] for _, piece in have])
        splits[name] = Split(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)))
        rows[name] = [r for _, piece in have for r in piece.rows[name]]
        member[name] = [j for j, piece in have for _ in piece.rows[name]]
        if all(dates[j] is not None for j, _ in have):
            split_dates[name] = [dates[j][r] for j, piece in have for r in piece.rows[name]]
        inverse[name] = torch.from_numpy(np.concatenate(
            [fold_scaler(piece.inverse[name], float(piece.offset[piece.ti]), float(piece.scale[piece.ti])) for _, piece in have]))
        for k in kinds:
            parts = [piece.base[k][name] if k in piece.base else np.full(piece.t[name].shape, np.nan) for _, piece in have]
            base[k][name] = torch.from_numpy(np.concatenate(parts).astype(np.float32))
    members = [SeriesMember(name=n, series=p.y.tolist(), dates=d, val_start=p.n_tr, test_start=p.n_fit,
                            mase_scale=p.mase_scale) for n, p, d in zip(names, pieces, dates)]
    return splits, rows, split_dates, member, inverse, base, members  # type: ignore[return-value]
