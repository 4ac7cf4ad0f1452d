"""The Python API on forecast runs whose inverse needs each window (window_norm, target_transform):
raw arrays are refused with one line (their inverse needs the window's last actual value, which
only a CSV carries); tests/test_forecast_cli.py checks `predict --input file.csv` on such runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lstmctl
from lstmctl.errors import UserError

from conftest import CONFIGS


def test_raw_arrays_are_refused_for_a_differenced_run(cli, runs_dir):
    out = json.loads(cli(
        "train", str(CONFIGS / "sunspots.yaml"), "--set", "data.target_transform=diff", "--set", "train.epochs=2",
        "--quiet", "--json",
    ).stdout)
    run = lstmctl.load_run(out["run"], runs_dir=str(runs_dir))
    window = run.config.data["window"]
    with pytest.raises(UserError, match="predict from a CSV"):
        run.predict(np.ones((1, window, run.data.input_size)))


def test_raw_arrays_are_refused_for_a_long_table_run(cli, runs_dir, write_config):
    """Each series has its own scaler: a raw array does not say which series it is."""
    data = Path(__file__).parent / "data" / "three_series.csv"
    cfg = write_config({"data": {"name": "tabular", "path": str(data), "target": "sales", "date_column": "month",
                                 "series_column": "store", "window": 4, "test_fraction": 0.25},
                        "model.hidden_size": 4, "train.epochs": 1})
    out = json.loads(cli("train", cfg, "--quiet", "--json").stdout)
    run = lstmctl.load_run(out["run"], runs_dir=str(runs_dir))
    with pytest.raises(UserError, match="scales each series on its own"):
        run.predict(np.ones((1, 4, run.data.input_size)))
