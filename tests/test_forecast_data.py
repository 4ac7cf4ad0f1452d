"""Forecasting on the tabular dataset, checked by hand on constructed series: H-step windows and their
splits, the baselines (naive, seasonal naive, drift) and MASE, per-step metrics, the reversible
window norms and target transforms, and the date column read with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lstmctl.data.tabular import TabularParams, build_tabular
from lstmctl.errors import UserError
from lstmctl.evaluation import in_units, split_metrics


def write(path, dates, values, name="y", date="date"):
    lines = [f"{date},{name}"] + [f"{d},{v}" for d, v in zip(dates, values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def build(path, val_fraction=0.0, **kw):
    kw.setdefault("target", "y")
    kw.setdefault("date_column", "date")
    return build_tabular(TabularParams(path=str(path), **kw), seed=0, val_fraction=val_fraction, state={})


def months(n, start="2000-01-01"):
    return [d.strftime("%Y-%m-%d") for d in pd.date_range(start, periods=n, freq="MS")]


def test_h_step_windows_targets_and_splits(tmp_path):
    n, window, H = 50, 4, 3
    y = np.arange(n, dtype=float) ** 1.5
    b = build(write(tmp_path / "s.csv", months(n), y), 0.2, window=window, horizon=H, scale="none", test_fraction=0.2)
    n_tr, n_test = b.state["rows"]["train"], b.state["rows"]["test"]
    assert b.output_size == H and b.test.y.shape == (n_test - H + 1, H)  # every test window whose H targets are in it
    for name in ("train", "val", "test"):
        split, first = b.split(name), np.asarray(b.facts.rows[name])
        np.testing.assert_allclose(split.y.numpy(), y[first[:, None] + np.arange(H)], rtol=1e-6)
        np.testing.assert_allclose(split.x[:, -1, 0].numpy(), y[first - 1], rtol=1e-6)  # the origin: the row before
    # no target row of a val/test window is a training target, nor a test target a validation one
    targets = {k: set((np.asarray(b.facts.rows[k])[:, None] + np.arange(H)).ravel()) for k in ("train", "val", "test")}
    assert max(targets["train"]) < n_tr <= min(targets["val"]) and max(targets["val"]) < b.facts.test_start
    assert not targets["train"] & targets["val"] and not targets["val"] & targets["test"]


def test_linear_trend_diff_and_last_norm_are_exact(tmp_path):
    """y = 2t + 3: differenced, every change is 2 (scaled 0, normalised 0); a model that outputs 0 is exact,
    drift is exact, the naive forecast is off by 2h."""
    n, H = 40, 3
    y = 2.0 * np.arange(n) + 3
    b = build(write(tmp_path / "lin.csv", months(n), y), window=5, horizon=H, target_transform="diff",
              window_norm="last", test_fraction=0.25)
    assert torch.equal(b.test.y, torch.zeros_like(b.test.y)) and b.facts.mase_scale == 2.0
    rows = np.asarray(b.facts.rows["test"])
    exact = y[rows[:, None] + np.arange(H)]
    np.testing.assert_array_equal(in_units(b, "test", torch.zeros(len(rows), H)).numpy(), exact)
    m = split_metrics(b, "test", torch.zeros(len(rows), H))
    assert m["mae"] == 0 and m["mase"] == 0 and m["drift_mae"] == 0
    assert m["naive_mae"] == pytest.approx((2 + 4 + 6) / 3) and m["naive_mase"] == pytest.approx(2.0)
    assert m["mae_h3"] == 0 and "mae_h4" not in m
    # the naive forecast of every step is the origin's value; drift adds h times the training slope (2)
    np.testing.assert_array_equal(b.facts.naive["test"].numpy(), np.repeat(y[rows - 1][:, None], H, 1))
    np.testing.assert_array_equal(b.facts.baselines["drift"]["test"].numpy(), exact)


@pytest.mark.parametrize("norm", ["last", "mean", "mean_std"])
@pytest.mark.parametrize("transform", ["none", "log", "diff", "log_diff"])
def test_inverse_gives_the_targets_back(tmp_path, norm, transform):
    rng = np.random.default_rng(1)
    y = 50 + np.cumsum(rng.normal(size=60))
    b = build(write(tmp_path / "r.csv", months(60), y), 0.2, window=6, horizon=2, window_norm=norm,
              target_transform=transform)
    for name in ("train", "val", "test"):
        rows = np.asarray(b.facts.rows[name])
        np.testing.assert_allclose(in_units(b, name, b.split(name).y).numpy(), y[rows[:, None] + np.arange(2)], rtol=1e-5)


def test_per_step_metrics_are_averaged(tmp_path):
    y = np.sin(np.arange(60) / 3) * 10
    b = build(write(tmp_path / "s.csv", months(60), y), window=4, horizon=3, scale="none")
    target = b.test.y
    m = split_metrics(b, "test", target + torch.tensor([1.0, 2.0, -3.0]))
    assert (m["mae_h1"], m["mae_h2"], m["mae_h3"]) == pytest.approx((1, 2, 3))
    assert m["mae"] == pytest.approx(2) and m["rmse"] == pytest.approx(2)  # the average of the steps' rmse
    assert m["mase"] == pytest.approx(np.mean([m[f"mase_h{k}"] for k in (1, 2, 3)]))


def test_seasonal_naive_inferred_and_set(tmp_path):
    """Quarterly pattern on a trend of 1 per quarter: the seasonal naive is off by exactly 4 (one year of trend)."""
    n = 48
    y = np.tile([1.0, 5.0, 3.0, 8.0], n // 4) + np.arange(n)
    quarters = [f"{1990 + i // 4}Q{i % 4 + 1}" for i in range(n)]
    b = build(write(tmp_path / "q.csv", quarters, y), window=4, horizon=2, scale="none")
    assert b.facts.freq.startswith("QS") and b.facts.season == 4
    naive_scale = np.abs(np.diff(y[: b.facts.val_start])).mean()
    assert b.facts.mase_scale == pytest.approx(naive_scale)  # inferred: MASE keeps the naive scale
    m = split_metrics(b, "test", b.test.y)
    assert m["snaive_mae"] == pytest.approx(4.0) and m["snaive_rmse"] == pytest.approx(4.0)
    b = build(write(tmp_path / "q.csv", quarters, y), window=4, horizon=2, scale="none", season=4)
    assert b.facts.mase_scale == pytest.approx(4.0)  # set: scaled by the seasonal naive's in-sample MAE
    assert split_metrics(b, "test", b.test.y)["snaive_mase"] == pytest.approx(1.0)


@pytest.mark.parametrize("freq,season", [("MS", 12), ("W-SUN", 52), ("D", 7), ("h", 24), ("YS", None)])
def test_season_from_the_date_frequency(tmp_path, freq, season):
    dates = pd.date_range("2001-01-01", periods=200, freq=freq).strftime("%Y-%m-%d %H:%M")
    b = build(write(tmp_path / "f.csv", dates, np.arange(200.0) % 5), window=3, test_fraction=0.2)
    assert b.facts.season == season


def test_integer_years_and_plain_labels(tmp_path):
    b = build(write(tmp_path / "y.csv", range(1749, 1789), np.arange(40.0)), window=3)
    assert b.facts.freq == "YS" and b.facts.season is None and b.facts.dates[0] == "1749"
    b = build(write(tmp_path / "l.csv", [f"d{i}" for i in range(40)], np.arange(40.0)), window=3)
    assert b.facts.freq is None and b.facts.dates[-1] == "d39"


def test_gaps_are_named_or_filled(tmp_path):
    dates = months(30)
    del dates[10:12]  # 2000-11 and 2000-12 missing
    y = np.arange(28.0)
    path = write(tmp_path / "g.csv", dates, y)
    with pytest.raises(UserError, match=r"2 missing time steps in 'date' \(a regular MS series\), the first 2000-11-01 "
                       r"after line 11 \(2000-10-01\); set data.missing") as e:
        build(path, window=3)
    assert "\n" not in str(e.value)
    b = build(path, window=3, missing="interpolate", scale="none")
    assert len(b.facts.series) == 30 and b.facts.dates[10:13] == ["2000-11-01", "2000-12-01", "2001-01-01"]
    assert b.facts.series[9:13] == pytest.approx([9.0, 9 + 1 / 3, 9 + 2 / 3, 10.0])
    b = build(path, window=3, missing="ffill", scale="none")
    assert b.facts.series[9:13] == [9.0, 9.0, 9.0, 10.0]
    assert len(build(path, window=3, missing="drop").facts.series) == 28


@pytest.mark.parametrize(
    "dates,values,kw,pattern",
    [
        (months(30)[:5] + ["2000-13-45"] + months(30)[6:], None, {}, r"line 7 holds '2000-13-45', which is not a date"),
        (months(30)[:6] + months(30)[5:29], None, {}, r"duplicate timestamp '2000-06-01' in 'date' \(lines 7 and 8\)"),
        (months(30)[::-1], None, {}, r"not in time order: line 3"),
        (months(30), np.arange(30.0) - 5, {"target_transform": "log"}, r"log needs positive values, but row 1 holds -5"),
        (months(30), None, {"horizon": 7}, r"data.horizon = 7 is longer than the test block \(6 rows of 30\)"),
        (months(30), None, {"season": 25}, r"data.season = 25 is longer than the training block \(24 rows\)"),
    ],
)
def test_bad_input_is_one_line(tmp_path, dates, values, kw, pattern):
    y = np.arange(1.0, 31.0) if values is None else values
    with pytest.raises(UserError, match=pattern) as e:
        build(write(tmp_path / "bad.csv", dates, y), window=3, **kw)
    assert "\n" not in str(e.value)
