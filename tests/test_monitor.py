"""Validation metrics every epoch (val_<metric> columns) and train.monitor: best.pt, early stopping, the
plateau schedule and run.json's best follow the monitored column in its direction (min or max).

The constructed cases replace the numbers the validation pass returns (loss and metrics) with fixed
sequences, while the pass itself still runs on the real weights: what is tested is what the loop
does with them. The other tests train tiny real runs and check the columns against `eval`.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from lstmctl import config, metrics
from lstmctl.evaluation import metric_columns
from lstmctl.session import open_session
from lstmctl.train import loop, setup
from lstmctl.train.hooks import BestModel, EarlyStopper
from lstmctl.train.progress import ProgressReporter

CLASSIFY = {  # 12 training sequences, 4 held out for validation: one step an epoch, milliseconds
    "data": {"name": "random_sequences", "task": "classification", "n_train": 16, "n_test": 4, "steps": 4, "outputs": 3},
    "model": {"name": "lstm", "hidden_size": 4},
    "train.val_fraction": 0.25,
    "train.batch_size": None,
    "train.checkpoint_every_s": 0,
}


def _rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _only_run(runs_dir):
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


def _info(run) -> dict:
    return json.loads((run / "run.json").read_text())


def _best_pt(run) -> dict:
    return torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)


def _one_error_line(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def scripted(monkeypatch):
    """script(losses, accuracies): epoch e's validation reports losses[e-1] and accuracies[e-1]; the pass
    itself still runs on the real weights. Returns {validation number: the weights it saw}."""
    real = loop.evaluate_loss

    def script(losses: list[float], accuracies: list[float]) -> dict[int, dict[str, torch.Tensor]]:
        weights: dict[int, dict[str, torch.Tensor]] = {}

        def evaluate_loss(model, *a, **k):
            real(model, *a, **k)  # the real pass (fills the outputs the metrics would come from)
            n = len(weights) + 1
            weights[n] = {name: v.detach().clone() for name, v in model.state_dict().items()}
            return losses[n - 1]

        monkeypatch.setattr(loop, "evaluate_loss", evaluate_loss)
        monkeypatch.setattr(loop, "validation_metrics",
                            lambda data, outputs: {"val_accuracy": accuracies[len(weights) - 1], "val_macro_f1": 0.5})
        return weights

    return script


# ---------------------------------------------------------------- best.pt follows the monitor


def test_a_max_mode_monitor_picks_a_different_epoch_than_the_loss(cli, write_config, runs_dir, scripted, tmp_path):
    losses = [0.9, 0.5, 0.7, 0.6]  # val_loss would pick epoch 2
    accuracies = [0.5, 0.6, 0.9, 0.7]  # val_accuracy picks epoch 3
    weights = scripted(losses, accuracies)
    cli("train", write_config({**CLASSIFY, "train.epochs": 4, "train.monitor": "val_accuracy"}), "--quiet")
    run = _only_run(runs_dir)
    rows = _rows(run)
    assert [float(r["val_accuracy"]) for r in rows] == accuracies and [float(r["val_loss"]) for r in rows] == losses
    best = _best_pt(run)
    assert best["epoch"] == 3 and best["best"] == {"value": 0.9, "epoch": 3, "monitor": "val_accuracy", "mode": "max"}
    for k, v in best["model"].items():  # the weights of epoch 3, not those of epoch 2 (the lowest loss)
        assert torch.equal(v, weights[3][k]), k
    assert any(not torch.equal(best["model"][k], weights[2][k]) for k in best["model"])
    info = _info(run)
    assert info["best"] == {"epoch": 3, "value": 0.9, "monitor": "val_accuracy", "mode": "max"}

    # the same run watching the loss (the default with a validation split) keeps epoch 2's weights
    weights = scripted(losses, accuracies)
    cli("train", write_config({**CLASSIFY, "train.epochs": 4}), "--quiet", "--runs-dir", tmp_path / "by-loss")
    run = _only_run(tmp_path / "by-loss")
    best = _best_pt(run)
    assert _info(run)["best"] == {"epoch": 2, "value": 0.5, "monitor": "val_loss", "mode": "min"}
    assert all(torch.equal(v, weights[2][k]) for k, v in best["model"].items())


def test_monitor_mode_overrides_the_name(cli, write_config, runs_dir, scripted):
    scripted([0.9, 0.5, 0.7], [0.5, 0.6, 0.9])
    cli("train", write_config({**CLASSIFY, "train.epochs": 3, "train.monitor": "val_accuracy", "train.monitor_mode": "min"}), "-q")
    assert _info(_only_run(runs_dir))["best"] == {"epoch": 1, "value": 0.5, "monitor": "val_accuracy", "mode": "min"}


# ---------------------------------------------------------------- real validation metrics


def test_val_metrics_are_evals_metrics_of_that_epoch(cli, write_config, runs_dir):
    cli("train", write_config({**CLASSIFY, "train.epochs": 5, "train.monitor": "val_accuracy", "train.lr": 0.05}), "-q")
    run = _only_run(runs_dir)
    rows = _rows(run)
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr", "seconds"]
    acc = [float(r["val_accuracy"]) for r in rows]
    assert _info(run)["best"]["epoch"] == acc.index(max(acc)) + 1  # the first epoch with the highest accuracy
    result = json.loads(cli("eval", run.name, "--split", "val", "--checkpoint", "last", "--json").stdout)
    assert result["metrics"]["accuracy"] == pytest.approx(acc[-1], abs=1e-12)
    assert result["metrics"]["macro_f1"] == pytest.approx(float(rows[-1]["val_macro_f1"]), abs=1e-9)


def test_regression_records_mae_rmse_r2(cli, write_config, runs_dir):
    cli("train", write_config({"train.val_fraction": 0.25, "train.epochs": 2, "train.monitor": "val_r2"}), "-q")
    run = _only_run(runs_dir)
    rows = _rows(run)
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_mae", "val_rmse", "val_r2", "lr", "seconds"]
    assert _info(run)["best"]["mode"] == "max"
    result = json.loads(cli("eval", run.name, "--split", "val", "--checkpoint", "last", "--json").stdout)["metrics"]
    for name in ("mae", "rmse", "r2"):
        assert result[name] == pytest.approx(float(rows[-1][f"val_{name}"]), rel=1e-6, abs=1e-7), name


def test_forecast_records_mase(cli, write_config, runs_dir, tmp_path):
    lines = ["date,y,x"] + [f"d{i},{math.sin(i / 3) * 10 + i * 0.1:.4f},{math.cos(i / 5):.4f}" for i in range(60)]
    (tmp_path / "series.csv").write_text("\n".join(lines) + "\n")
    cfg = write_config({"data": {"name": "tabular", "path": str(tmp_path / "series.csv"), "target": "y", "window": 4,
                                 "date_column": "date"},
                        "train.val_fraction": 0.2, "train.epochs": 2, "train.monitor": "val_mase"})
    cli("train", cfg, "-q")
    run = _only_run(runs_dir)
    rows = _rows(run)
    assert [c for c in rows[0] if c.startswith("val_")] == ["val_loss", "val_mae", "val_rmse", "val_r2", "val_mase"]
    assert _info(run)["best"]["mode"] == "min"
    result = json.loads(cli("eval", run.name, "--split", "val", "--checkpoint", "last", "--json").stdout)["metrics"]
    assert result["mase"] == pytest.approx(float(rows[-1]["val_mase"]), rel=1e-6)
    assert result["mae"] == pytest.approx(float(rows[-1]["val_mae"]), rel=1e-6)


def test_metric_columns_are_known_before_training(write_config):
    cfg = config.load(write_config({**CLASSIFY}))
    data = open_session(cfg, device="cpu").data
    assert metric_columns(data) == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr", "seconds"]
    data = open_session(config.load(write_config({"train.val_fraction": 0.0})), device="cpu").data
    assert metric_columns(data) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]  # as before: no val_* without val
    assert setup.recorded_columns(data) == ["train_loss"]


def test_val_every_leaves_the_other_rows_empty(cli, write_config, runs_dir, scripted):
    scripted([0.5, 0.4, 0.6], [0.8, 0.6, 0.7])  # three validations: epochs 2, 4 and 5 (the last)
    cli("train", write_config({**CLASSIFY, "train.epochs": 5, "train.val_every": 2, "train.monitor": "val_accuracy"}), "-q")
    run = _only_run(runs_dir)
    rows = _rows(run)
    assert [r["val_loss"] for r in rows] == ["", "0.5", "", "0.4", "0.6"]
    assert [r["val_accuracy"] for r in rows] == ["", "0.8", "", "0.6", "0.7"]
    assert all(r["train_loss"] for r in rows)
    assert _info(run)["best"] == {"epoch": 2, "value": 0.8, "monitor": "val_accuracy", "mode": "max"}


# ---------------------------------------------------------------- early stopping and the plateau schedule


def test_early_stopping_on_a_max_metric(cli, write_config, runs_dir, scripted):
    # highest 0.8 at epoch 2; 0.7, 0.7, 0.8 (not above 0.8) are three epochs without improvement
    scripted([1.0] * 8, [0.5, 0.8, 0.7, 0.7, 0.8, 0.9, 0.9, 0.9])
    cli("train", write_config({**CLASSIFY, "train.epochs": 8, "train.monitor": "val_accuracy",
                                "train.early_stopping": {"patience": 3}}), "-q")
    info = _info(_only_run(runs_dir))
    assert info["stop_reason"] == "early_stopping" and info["epochs_done"] == 5  # a min-mode stopper: epoch 4
    assert info["best"]["epoch"] == 2


def test_early_stopping_watches_its_own_monitor_in_its_own_mode(cli, write_config, runs_dir, scripted):
    scripted([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])  # accuracy rises, the loss too
    cli("train", write_config({**CLASSIFY, "train.epochs": 6, "train.monitor": "val_accuracy",
                                "train.early_stopping": {"patience": 2, "monitor": "val_loss"}}), "-q")
    info = _info(_only_run(runs_dir))
    assert info["stop_reason"] == "early_stopping" and info["epochs_done"] == 3
    assert info["best"] == {"epoch": 3, "value": 0.7, "monitor": "val_accuracy", "mode": "max"}


@pytest.mark.parametrize("accuracies,lrs", [
    ([0.5, 0.6, 0.6, 0.6, 0.6], [0.01, 0.01, 0.01, 0.01, 0.005]),  # stalls from epoch 3: halved after 2 bad epochs
    ([0.5, 0.6, 0.7, 0.8, 0.9], [0.01] * 5),  # rises: a min-mode plateau would have halved it twice
])
def test_plateau_on_a_max_metric(cli, write_config, runs_dir, scripted, accuracies, lrs):
    scripted([1.0] * 5, accuracies)
    cli("train", write_config({**CLASSIFY, "train.epochs": 5, "train.monitor": "val_accuracy",
                                "train.scheduler": {"name": "plateau", "patience": 1, "factor": 0.5}}), "-q")
    assert [float(r["lr"]) for r in _rows(_only_run(runs_dir))] == lrs


# ---------------------------------------------------------------- bad input


def test_unknown_monitor_is_one_line_naming_the_recorded_columns(cli, write_config, runs_dir):
    line = _one_error_line(cli("train", write_config({**CLASSIFY, "train.monitor": "val_acc"}), ok=False),
                           "train.monitor", "'val_acc'", "train_loss, val_loss, val_accuracy, val_macro_f1")
    assert "lr" not in line.split("records")[-1]
    _one_error_line(cli("train", write_config({"train.monitor": "val_r2"}), ok=False),
                    "'val_r2'", "it records train_loss", "train.val_fraction")
    _one_error_line(cli("train", write_config({**CLASSIFY, "train.early_stopping": {"monitor": "accuracy"}}), ok=False),
                    "train.early_stopping.monitor", "'accuracy'", "val_accuracy")
    r = cli("train", write_config({"train.monitor_mode": "up"}), ok=False)
    assert r.exit_code == 2 and "monitor_mode" in r.output and "Traceback" not in r.output
    assert not runs_dir.exists() or not list(runs_dir.iterdir())  # nothing written


def test_new_run_with_an_unknown_monitor_writes_nothing(cli, write_config, runs_dir):
    cli("train", write_config({**CLASSIFY, "train.epochs": 1}), "-q")
    parent = _only_run(runs_dir)
    _one_error_line(cli("resume", parent.name, "--from", "best", "--new-run", "--set", "train.monitor=nope", ok=False),
                    "'nope'", "val_accuracy")
    assert [p.name for p in runs_dir.iterdir() if p.is_dir()] == [parent.name]


# ---------------------------------------------------------------- the pieces


def test_modes_follow_the_name():
    assert [metrics.mode_for(n) for n in ("val_accuracy", "val_macro_f1", "val_r2", "val_loss", "val_mase", "train_loss")] == [
        "max", "max", "max", "min", "min", "min"]


def test_checkpoints_without_modes_load_as_min():
    """last.pt files written before monitors had modes: best and early stopping watched a loss."""
    best = BestModel(torch.nn.Linear(1, 1), "val_loss", "min")
    best.load_state_dict({"value": 0.3, "epoch": 4, "monitor": "val_loss"})
    assert best.summary() == {"epoch": 4, "value": 0.3, "monitor": "val_loss", "mode": "min"}
    stopper = EarlyStopper(config.EarlyStopping(patience=2), "val_loss", "min")
    stopper.load_state_dict({"best": 0.3, "bad_epochs": 1})
    assert stopper.mode == "min" and stopper.should_stop({"val_loss": 0.4})


def test_progress_line_shows_the_monitor():
    row = {"train_loss": 0.31, "val_loss": 0.35, "val_accuracy": 0.887}
    assert ProgressReporter(3, 0, 5.0, enabled=False, monitor="val_accuracy").info(row) == "loss 0.31 val 0.35 val_accuracy 0.887"
    assert ProgressReporter(3, 0, 5.0, enabled=False).info(row) == "loss 0.31 val 0.35"
    assert ProgressReporter(3, 0, 5.0, enabled=False, monitor="val_accuracy").info({"train_loss": 0.31}) == "loss 0.31"
