"""`lstmctl backtest` through the real CLI: K rolling origins on an expanding window as a group of runs,
each fold's cut in its saved config (so `eval RUN` is exact), per-fold and mean metrics beside the
baselines, --no-refit reusing fold 1's model, `eval GROUP` and `compare GROUP GROUP`, and bad input as
one line with nothing written."""

from __future__ import annotations

import json

import pytest

from tests.test_forecast_cli import config, monthly_csv
from tests.test_robust_data import one_line


def backtest_json(cli, *args):
    return json.loads(cli("backtest", *args, "--json").output)


def test_refit_folds_are_a_group_of_exact_runs(cli, tmp_path, write_config, runs_dir):
    cfg = config(write_config, monthly_csv(tmp_path / "m.csv"), target_transform="diff")
    out = backtest_json(cli, cfg, "--folds", "3", "--set", "train.epochs=1")
    # 72 rows, test block round(72 * 0.2) = 14 rows -> S = 14 // 3 = 4; cuts at 72 - 3*4, 72 - 2*4, 72 - 4
    assert [f["test_start"] for f in out["folds"]] == [60, 64, 68] and {f["test_rows"] for f in out["folds"]} == {4}
    assert [f["first_target"] for f in out["folds"]] == ["2015-01", "2015-05", "2015-09"]
    assert len(out["runs"]) == 3 == len(set(out["runs"]))
    for fold in out["folds"]:
        for k in ("mae", "rmse", "mase", "naive_mae", "snaive_mae", "drift_mae"):
            assert isinstance(fold[k], float), k
    assert out["mean"]["mae"] == pytest.approx(sum(f["mae"] for f in out["folds"]) / 3)
    assert out["mean"]["naive_mae"] == pytest.approx(sum(f["naive_mae"] for f in out["folds"]) / 3)
    assert out["folds"][0]["mae"] != out["folds"][1]["mae"]  # different origins, different test blocks

    for fold in out["folds"]:
        info = json.loads((runs_dir / fold["run"] / "run.json").read_text())
        assert info["group"] == out["group"] and f"data.test_start={fold['test_start']}" in info["overrides"]
        again = json.loads(cli("eval", fold["run"], "--json").output)["metrics"]  # rebuilt from the saved config alone
        assert again["mae"] == pytest.approx(fold["mae"], rel=1e-9) and again["naive_mae"] == pytest.approx(fold["naive_mae"])
    assert (runs_dir / out["runs"][0] / "plots" / "backtest.png").stat().st_size > 10_000

    group = json.loads(cli("eval", out["group"], "--json").output)
    assert set(group["runs"]) == set(out["runs"])
    assert group["metrics"]["mae"]["mean"] == pytest.approx(out["mean"]["mae"])
    assert out["group"] in cli("runs").output


def test_no_refit_trains_once_and_compares_with_refit(cli, tmp_path, write_config, runs_dir):
    cfg = config(write_config, monthly_csv(tmp_path / "m.csv"))
    once = backtest_json(cli, cfg, "--folds", "2", "--step", "5", "--no-refit", "--set", "train.epochs=1")
    assert [f["test_start"] for f in once["folds"]] == [62, 67]
    first, second = (runs_dir / r for r in once["runs"])
    assert json.loads((second / "run.json").read_text())["trained_by"] == first.name
    assert (second / "checkpoints" / "best.pt").read_bytes() == (first / "checkpoints" / "best.pt").read_bytes()
    states = [json.loads((r / "data_state.json").read_text()) for r in (first, second)]
    assert [(s["offset"], s["scale"], s["mase_scale"]) for s in states][0] == [(s["offset"], s["scale"], s["mase_scale"]) for s in states][1]  # fold 1's scaler
    again = json.loads(cli("eval", second.name, "--json").output)["metrics"]
    assert again["mae"] == pytest.approx(once["folds"][1]["mae"], rel=1e-9)

    table = cli("backtest", cfg, "--folds", "2", "--step", "5", "--set", "train.epochs=1", "--quiet").output
    assert "naive_mae" in table and "drift_mae" in table and "mean" in table and "2015-03" in table and "2015-08" in table
    refit = next(line.split()[-1] for line in table.splitlines() if line.startswith("group id:"))
    both = json.loads(cli("compare", once["group"], refit, "--json", "--out", tmp_path / "c.png").output)
    assert both["groups"] == [once["group"], refit]


def test_bad_backtests_are_one_line_and_write_nothing(cli, tmp_path, write_config, runs_dir):
    cfg = config(write_config, monthly_csv(tmp_path / "m.csv"))
    one_line(cli("backtest", write_config(name="sine.yaml"), "--folds", "2", ok=False), "tabular", "sine_cosine")
    one_line(cli("backtest", cfg, "--folds", "12", "--step", "5", ok=False), "--folds 12", "training", "lower --folds")
    one_line(cli("backtest", cfg, "--folds", "2", "--step", "2", ok=False), "--step 2", "data.horizon = 3")
    one_line(cli("backtest", cfg, "--folds", "2", "--set", "data.test_start=40", ok=False), "data.test_start", "--step")
    one_line(cli("train", cfg, "--set", "data.test_start=70", "--set", "data.test_rows=5", ok=False),
             "data.test_start = 70", "72 usable rows")
    assert not runs_dir.exists() or not [p for p in runs_dir.rglob("*") if p.is_file()]


def test_resume_group_continues_every_fold(cli, tmp_path, write_config, runs_dir):
    """The folds share one seed: resuming the group must walk its members, not its seeds."""
    cfg = config(write_config, monthly_csv(tmp_path / "m.csv"))
    out = backtest_json(cli, cfg, "--folds", "2", "--step", "5", "--set", "train.epochs=1")
    res = json.loads(cli("resume", out["group"], "--epochs", "2", "--quiet", "--json").output)
    assert sorted(res["resumed"]) == sorted(out["runs"]) and not res["failed"]
    for r in out["runs"]:
        assert json.loads((runs_dir / r / "run.json").read_text())["epochs_done"] == 2
