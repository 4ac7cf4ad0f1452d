"""logging.tensorboard: event files when the package is there, a clear error when it is not."""

import sys

import pytest


def test_tensorboard_event_files(cli, write_config, runs_dir):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cli("train", write_config({"logging.tensorboard": True, "train.val_fraction": 0.25, "train.epochs": 4}), "--quiet")
    run = next(runs_dir.iterdir())
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "val/loss", "lr"} <= set(acc.Tags()["scalars"])
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [1, 2, 3, 4]
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [round(e.value, 5) for e in acc.Scalars("train/loss")] == [round(float(r["train_loss"]), 5) for r in rows]


def test_missing_tensorboard_is_a_clear_error(cli, write_config, runs_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    r = cli("train", write_config({"logging.tensorboard": True}), ok=False)
    assert r.exit_code == 2
    assert "pip install 'lstmctl[tensorboard]'" in r.output and "Traceback" not in r.output
    assert not runs_dir.exists() or not list(runs_dir.iterdir())  # no half-made run directory
