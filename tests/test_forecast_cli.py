"""Forecasting through the real CLI: an H-step run's eval (averaged and per-step metrics, baselines),
its figure and `predict` columns past the end of the file, and bad forecasting input as one line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd

from tests.conftest import CONFIGS
from tests.test_robust_data import one_line


def monthly_csv(path, n=72):
    t = np.arange(n)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)
    dates = pd.date_range("2010-01-01", periods=n, freq="MS").strftime("%Y-%m")
    path.write_text("month,y\n" + "".join(f"{d},{v:.4f}\n" for d, v in zip(dates, y)))
    return path


def config(write_config, path, **data):
    return write_config({"data": {"name": "tabular", "path": str(path), "target": "y", "date_column": "month",
                                  "window": 12, "horizon": 3, **data},
                         "model.hidden_size": 8, "train.epochs": 2, "train.batch_size": 16, "train.val_fraction": 0.2})


def test_h_step_run_eval_plot_predict(cli, tmp_path, write_config):
    path = monthly_csv(tmp_path / "m.csv")
    cli("train", config(write_config, path, window_norm="last", target_transform="diff"), "--quiet")
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    for k in ("mae", "rmse", "mase", "naive_mae", "naive_mase", "snaive_mae", "snaive_rmse", "drift_mae", "drift_rmse"):
        assert isinstance(m[k], float), k
    assert abs(m["mae"] - np.mean([m[f"mae_h{h}"] for h in (1, 2, 3)])) < 1e-9  # the average over the steps
    assert "mae_h4" not in m
    table = cli("eval", "latest").output
    assert "snaive_mae" in table and "drift_mae" in table and "mae_h3" in table
    metrics_csv = next((tmp_path / "runs").glob("*/metrics.csv")).read_text().splitlines()[0]
    assert "val_mae" in metrics_csv and "val_mase" in metrics_csv

    runs = cli("runs").output  # the runs table's forecast column: eval's mae_vs_naive
    assert "mae/naive" in runs and f"{m['mae_vs_naive']:.4g}"[:4] in runs

    out = cli("plot", "latest").output
    assert "forecast.png" in out

    new = tmp_path / "recent.csv"
    new.write_text("".join(path.read_text().splitlines(True)[:1] + path.read_text().splitlines(True)[-30:]))
    cli("predict", "latest", "--input", new, "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["label", "y_h1", "y_h2", "y_h3"]
    assert len(rows) == 30 - 1 - 12 + 1  # diff uses up the first row; one forecast per 12-row window
    assert rows[-1]["label"] == "2015-12+1" and rows[0]["label"] == "2014-08"  # row 13 of the new file: month 55 of the series
    last = [float(rows[-1][f"y_h{h}"]) for h in (1, 2, 3)]
    assert all(80 < v < 160 for v in last)  # in the series' units, not normalised ones


def test_h_one_keeps_the_one_step_keys(cli, tmp_path, write_config):
    cli("train", CONFIGS / "us_macro.yaml", "--set", "train.epochs=1", "--quiet")
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    assert "mae_h1" not in m and "snaive_mae" in m and "drift_mae" in m  # quarterly dates: season 4 inferred


def test_bad_forecast_input_through_the_cli(cli, tmp_path, write_config, runs_dir):
    path = monthly_csv(tmp_path / "m.csv", n=40)
    one_line(cli("train", config(write_config, path, horizon=9), ok=False), "data.horizon = 9", "test block (8 rows")
    one_line(cli("train", config(write_config, path, season=30), ok=False), "data.season = 30", "training block")
    gap = tmp_path / "gap.csv"
    gap.write_text("".join(l for i, l in enumerate(path.read_text().splitlines(True)) if i != 5))
    one_line(cli("train", config(write_config, gap), ok=False), "1 missing time step", "data.missing")
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
