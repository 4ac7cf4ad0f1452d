"""Prediction intervals (train.loss: quantile) through the real CLI: eval's pinball loss, coverage and width
recomputed by hand from `predict`'s quantile columns and the CSV's own values, the band's figure, a quantile
run of a non-series dataset, and bad quantile lists as one line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from lstmctl import metrics
from tests.test_forecast_cli import config, monthly_csv
from tests.test_robust_data import one_line


def test_pinball_and_coverage_of_constructed_forecasts():
    levels = [0.1, 0.5, 0.9]
    q = torch.tensor([[[0.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]], [[3.0, 4.0, 6.0]], [[5.0, 5.5, 6.0]]])  # (N=4, O=1, Q=3)
    y = torch.tensor([[1.5], [2.0], [7.0], [4.0]])
    # by hand, e = y - q, loss = max(tau e, (tau - 1) e):
    # y=1.5: e=(1.5, .5, -.5) -> .15 + .25 + .05;  y=2: e=(2, 1, 0) -> .2 + .5 + 0
    # y=7: e=(4, 3, 1) -> .4 + 1.5 + .9;          y=4: e=(-1, -1.5, -2) -> .9 + .75 + .2
    by_hand = (0.45 + 0.7 + 2.8 + 1.85) / 12
    m = metrics.intervals(q, y, levels)
    assert m["pinball"] == pytest.approx(by_hand)
    assert m["coverage_10_90"] == pytest.approx(2 / 4)  # 1.5 and 2 (the upper end counts) inside; 7 above, 4 below
    assert m["width_10_90"] == pytest.approx((2 + 2 + 3 + 1) / 4)
    crossed = torch.tensor([[2.0, 0.0, 1.0]])  # raw outputs come back in order
    assert metrics.quantile_outputs(crossed, 3).tolist() == [[[0.0, 1.0, 2.0]]]
    five = metrics.intervals(torch.zeros(1, 1, 5), torch.zeros(1, 1), [0.025, 0.25, 0.5, 0.75, 0.975])
    assert {"coverage_2p5_97p5", "coverage_25_75", "width_25_75"} <= set(five)


def test_quantile_run_eval_predict_plot_by_hand(cli, tmp_path, write_config):
    path = monthly_csv(tmp_path / "m.csv")
    cfg = config(write_config, path, window_norm="last", target_transform="diff")
    cli("train", cfg, "--set", "train.loss=quantile", "--set", "train.quantiles=[0.9, 0.1, 0.5]", "--quiet")
    run_dir = next((tmp_path / "runs").iterdir())
    assert "0.1\n  - 0.5\n  - 0.9" in (run_dir / "config.yaml").read_text()  # saved in order
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    for k in ("mae", "mase", "naive_mae", "snaive_mae", "pinball", "coverage_10_90", "width_10_90"):
        assert isinstance(m[k], float), k

    cli("predict", "latest", "--input", path, "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    cols = [f"y_h{h}_q{q}" for h in (1, 2, 3) for q in (10, 50, 90)]
    assert list(rows[0]) == ["label", *cols]
    pred = np.array([[float(r[c]) for c in cols] for r in rows]).reshape(len(rows), 3, 3)  # (window, step, level)
    assert (np.diff(pred, axis=-1) >= 0).all()  # the levels never cross
    # the test split by hand: windows all of whose 3 targets lie in the last round(72 * 0.2) = 14 rows
    y = np.array([float(line.split(",")[1]) for line in path.read_text().splitlines()[1:]])
    first_row = {r["label"]: i for i, r in enumerate(rows)}["2011-02"]  # window 0 (diff uses row 0) targets row 13
    assert first_row == 0
    starts = [i for i in range(len(rows)) if 58 <= 13 + i and 13 + i + 2 < 72]
    band = pred[starts]
    actual = np.array([y[13 + i: 16 + i] for i in starts])
    tau = np.array([0.1, 0.5, 0.9])
    e = actual[..., None] - band
    assert m["pinball"] == pytest.approx(np.maximum(tau * e, (tau - 1) * e).mean(), rel=1e-4)
    inside = (actual >= band[..., 0]) & (actual <= band[..., 2])
    assert m["coverage_10_90"] == pytest.approx(inside.mean())
    assert m["width_10_90"] == pytest.approx((band[..., 2] - band[..., 0]).mean(), rel=1e-4)
    assert m["mae"] == pytest.approx(np.abs(band[..., 1] - actual).mean(), rel=1e-4)  # the point forecast: the median

    assert "forecast.png" in cli("plot", "latest").output


def test_quantiles_of_a_non_series_regression(cli, write_config):
    cli("train", write_config({"train.loss": "quantile", "train.quantiles": [0.25, 0.5, 0.75], "train.epochs": 1}), "--quiet")
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    assert 0 <= m["coverage_25_75"] <= 1 and m["width_25_75"] >= 0 and m["pinball"] > 0 and "mae" in m
    assert "predictions.png" in cli("plot", "latest").output


@pytest.mark.parametrize("sets, needles", [
    (["train.quantiles=[0.1, 0.5, 1.0]"], ["train.quantiles", "outside (0, 1)"]),
    (["train.quantiles=[0, 0.5]"], ["train.quantiles", "outside (0, 1)"]),
    (["train.quantiles=[0.1, 0.5, 0.1]"], ["train.quantiles", "repeats 0.1"]),
    (["train.quantiles=[0.1, 0.9]"], ["train.quantiles", "needs 0.5"]),
])
def test_bad_quantiles_are_one_line(cli, tmp_path, write_config, runs_dir, sets, needles):
    path = monthly_csv(tmp_path / "m.csv")
    args = [a for s in ["train.loss=quantile", *sets] for a in ("--set", s)]
    one_line(cli("train", config(write_config, path), *args, ok=False), *needles)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_quantiles_need_the_quantile_loss_and_a_regression(cli, tmp_path, write_config, runs_dir):
    path = monthly_csv(tmp_path / "m.csv")
    one_line(cli("train", config(write_config, path), "--set", "train.quantiles=[0.1, 0.5, 0.9]", ok=False),
             "train.quantiles", "train.loss: quantile")
    classes = write_config({"data": {"name": "random_sequences", "task": "classification", "outputs": 3},
                            "train.loss": "quantile"}, name="cls.yaml")
    one_line(cli("train", classes, ok=False), "train.loss=quantile", "cross_entropy")
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
