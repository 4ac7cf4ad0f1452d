"""Known-future inputs (data.known_future) and calendar features (data.calendar), checked by hand: a window of W
rows becomes W + H input steps, the H appended steps carrying the known columns' values at the window's target
rows (other channels 0) and a flag channel; calendar features are sin/cos pairs of pandas' own date fields."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from lstmctl.data.tabular import TabularParams, build_tabular
from lstmctl.errors import UserError
from tests.test_robust_data import one_line

W, H = 4, 3


def monthly(path, n=48, empty_tail=0):
    dates = pd.date_range("2010-01-01", periods=n + empty_tail, freq="MS")
    t = np.arange(n + empty_tail)
    price = 5.0 + (t % 3) + 0.25 * (t % 5)
    y = 40 + 2 * np.sin(2 * np.pi * dates.month.to_numpy() / 12) - 3 * price + 0.1 * t
    cells = [f"{v:.4f}" if k < n else "" for k, v in enumerate(y)]
    path.write_text("month,y,price\n" + "".join(f"{d:%Y-%m},{c},{p}\n" for d, c, p in zip(dates, cells, price)))
    return path, dates, y, price


def build(path, **kw):
    kw = {"target": "y", "date_column": "month", "window": W, "horizon": H, "scale": "none", **kw}
    return build_tabular(TabularParams(path=str(path), **kw), seed=0, val_fraction=0.2, state={})


def test_known_future_steps_and_calendar_channels(tmp_path):
    path, dates, y, price = monthly(tmp_path / "m.csv")
    b = build(path, known_future=["price"], calendar=["month", "quarter"])
    assert b.facts.features == ["y", "price"] and b.input_size == 2 + 4 + 1
    for split in ("train", "val", "test"):
        x = b.split(split).x.double().numpy()
        first = np.asarray(b.facts.rows[split])
        win = first[:, None] - W + np.arange(W)  # the window's rows
        tgt = first[:, None] + np.arange(H)  # its target rows
        assert x.shape[1:] == (W + H, 7)
        np.testing.assert_allclose(x[:, :W, 0], y[win], atol=1e-4)  # the target's past
        np.testing.assert_allclose(x[:, :W, 1], price[win])
        np.testing.assert_allclose(x[:, W:, 1], price[tgt])  # known ahead: the price at each target row
        assert (x[:, W:, 0] == 0).all()  # the target itself is not known ahead
        assert (x[:, :W, 6] == 0).all() and (x[:, W:, 6] == 1).all()  # the flag of the appended steps
        month, quarter = dates.month.to_numpy(), dates.quarter.to_numpy()  # pandas' own fields
        for rows, part in ((win, slice(0, W)), (tgt, slice(W, W + H))):
            np.testing.assert_allclose(x[:, part, 2], np.sin(2 * np.pi * (month[rows] - 1) / 12), atol=1e-6)
            np.testing.assert_allclose(x[:, part, 3], np.cos(2 * np.pi * (month[rows] - 1) / 12), atol=1e-6)
            np.testing.assert_allclose(x[:, part, 5], np.cos(2 * np.pi * (quarter[rows] - 1) / 4), atol=1e-6)


def test_window_norm_applies_to_the_known_steps(tmp_path):
    path, _, _, price = monthly(tmp_path / "m.csv")
    b = build(path, known_future=["price"], window_norm="last")
    x, first = b.test.x.double().numpy(), np.asarray(b.facts.rows["test"])
    origin = first - 1
    np.testing.assert_allclose(x[:, W:, 1], price[first[:, None] + np.arange(H)] - price[origin][:, None], atol=1e-6)


@pytest.mark.parametrize("names", [["hour", "dayofweek"], ["dayofyear", "day", "weekofyear", "minute"]])
def test_calendar_fields_are_pandas_own(tmp_path, names):
    stamps = pd.date_range("2023-12-30 20:00", periods=60, freq="h")
    path = tmp_path / "h.csv"
    path.write_text("time,y\n" + "".join(f"{d:%Y-%m-%d %H:%M},{k % 7}\n" for k, d in enumerate(stamps)))
    b = build(path, date_column="time", calendar=names, horizon=1)
    x, first = b.train.x.double().numpy(), np.asarray(b.facts.rows["train"])
    win = first[:, None] - W + np.arange(W)
    fields = {"hour": (stamps.hour, 24), "dayofweek": (stamps.day_of_week, 7), "minute": (stamps.minute, 60),
              "dayofyear": (stamps.day_of_year - 1, np.where(stamps.is_leap_year, 366, 365)),
              "day": (stamps.day - 1, stamps.days_in_month), "weekofyear": (stamps.isocalendar().week.to_numpy() - 1, 53)}
    for k, name in enumerate(names):
        v, period = fields[name]
        angle = 2 * np.pi * np.asarray(v, float) / np.asarray(period, float)
        angle = np.broadcast_to(angle, (len(stamps),))
        np.testing.assert_allclose(x[:, :W, 1 + 2 * k], np.sin(angle[win]), atol=1e-6)
        np.testing.assert_allclose(x[:, W, 2 + 2 * k], np.cos(angle[first]), atol=1e-6)


def test_known_future_through_the_cli(cli, tmp_path, write_config):
    path, _, _, _ = monthly(tmp_path / "m.csv")
    cfg = write_config({"data": {"name": "tabular", "path": str(path), "target": "y", "date_column": "month", "window": W,
                                 "horizon": H, "known_future": ["price"], "calendar": ["month"]},
                        "model.hidden_size": 6, "train.epochs": 2, "train.batch_size": 16, "train.val_fraction": 0.2})
    cli("train", cfg, "--quiet")
    assert isinstance(json.loads(cli("eval", "latest", "--json").output)["metrics"]["mae"], float)
    ahead, later, _, _ = monthly(tmp_path / "ahead.csv", empty_tail=H)  # H rows after the end: price known, y empty
    cli("predict", "latest", "--input", ahead, "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 48 - W + 1 and rows[-1]["label"] == f"{later[48]:%Y-%m}"  # the first step after the end
    assert all(np.isfinite(float(rows[-1][f"y_h{h}"])) for h in (1, 2, 3))
    one_line(cli("predict", "latest", "--input", path, ok=False), "known-future", "empty target cell")


def test_calendar_alone_forecasts_past_the_end(cli, tmp_path, write_config):
    path, dates, _, _ = monthly(tmp_path / "m.csv")
    cfg = write_config({"data": {"name": "tabular", "path": str(path), "target": "y", "date_column": "month", "window": W,
                                 "horizon": H, "calendar": ["month"]}, "model.hidden_size": 4, "train.epochs": 1})
    cli("train", cfg, "--quiet")
    cli("predict", "latest", "--input", path, "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert rows[-1]["label"] == f"{dates[-1]:%Y-%m}+1"  # the calendar of the steps after the end: from the frequency


def test_bad_known_future_and_calendar(cli, tmp_path, write_config, runs_dir):
    path, _, _, _ = monthly(tmp_path / "m.csv")

    def cfg(**data):
        return write_config({"data": {"name": "tabular", "path": str(path), "target": "y", "window": W, **data},
                             "train.epochs": 1})

    one_line(cli("train", cfg(date_column="month", known_future=["promo"]), ok=False), "data.known_future", "'promo'")
    one_line(cli("train", cfg(calendar=["month"]), ok=False), "data.calendar needs data.date_column")
    years = tmp_path / "y.csv"
    years.write_text("year,y\n" + "".join(f"{1900 + k},{k % 5}\n" for k in range(40)))
    with pytest.raises(UserError, match="needs dates in data.date_column 'year'"):
        build(years, date_column="year", calendar=["month"])
    one_line(cli("train", cfg(date_column="month", known_future=["y"]), ok=False), "is the target")
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
