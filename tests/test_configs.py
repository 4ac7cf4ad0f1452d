"""Every shipped config validates, so none can rot (recursively, configs/**/*.yaml); every top-level
config selects on a validation split and records a non-loss validation metric each epoch."""

import csv
import json

import numpy as np
import pytest

from lstmctl import config
from lstmctl.data.idx import write_idx
from lstmctl.evaluation import metric_columns
from lstmctl.session import build_dataset
from tests.conftest import CONFIGS

ALL = sorted(CONFIGS.rglob("*.yaml"))
SHIPPED = sorted(CONFIGS.glob("*.yaml"))  # configs/data/ holds no experiment

# each shipped config, shrunk to a few seconds at most (the real runs are measured in the docs)
TINY = {
    "adding.yaml": ["data.length=10", "data.n_train=64", "data.n_test=16", "train.epochs=2"],
    "copy.yaml": ["data.n_train=64", "data.n_test=16", "data.delay=2", "train.epochs=2"],
    "fashion_mnist.yaml": ["data.root={idx}", "model.hidden_size=8", "train.epochs=2"],
    "mnist.yaml": ["data.root={idx}", "model.hidden_size=8", "train.epochs=2"],
    "random.yaml": ["train.epochs=2"],
    "stacked_lstm.yaml": ["train.epochs=3"],
    "sunspots.yaml": ["train.epochs=2"],
    "two_companies.yaml": ["train.epochs=3"],
    "us_macro.yaml": ["train.epochs=2"],
}
SINE = ["train.epochs=3"]  # sin2cos.yaml and the configs built on it


def test_there_are_configs():
    assert (CONFIGS / "sin2cos.yaml") in ALL


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_config_validates_and_documents_itself(path):
    cfg = config.load(path)
    assert cfg.name
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert first.startswith("#"), f"{path.name} must open with a comment saying what it shows and how to run it"
    assert config.loads(config.dump(cfg)) == cfg


@pytest.fixture
def idx(tmp_path):
    """Small MNIST-format files (the real ones are not needed to check the configs' shape)."""
    d = tmp_path / "idx"
    d.mkdir()
    rng = np.random.default_rng(0)
    write_idx(d / "train-images-idx3-ubyte", rng.integers(0, 256, (48, 28, 28), dtype=np.uint8))
    write_idx(d / "train-labels-idx1-ubyte", (np.arange(48) % 10).astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", rng.integers(0, 256, (12, 28, 28), dtype=np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", (np.arange(12) % 10).astype(np.uint8))
    return d


def _sets(path, idx) -> list[str]:
    return [s.replace("{idx}", str(idx)) for s in TINY.get(path.name, SINE)]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_selects_on_a_validation_metric(path, idx):
    """A validation split, an explicit train.monitor that is one of the recorded val_ columns, and a
    recorded validation metric besides the loss."""
    cfg = config.load(path, _sets(path, idx))
    assert cfg.train.monitor, f"{path.name}: set train.monitor (and say why in the comment)"
    assert cfg.train.monitor.startswith("val_"), f"{path.name}: select on validation, not {cfg.train.monitor}"
    data = build_dataset(cfg)
    assert data.val is not None and len(data.val) > 0, f"{path.name}: no validation split"
    columns = metric_columns(data)
    assert cfg.train.monitor in columns, (cfg.train.monitor, columns)
    assert [c for c in columns if c.startswith("val_") and c != "val_loss"], columns


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_trains_and_records_validation_metrics(path, idx, cli, runs_dir):
    """Tiny versions through train: every epoch that validates fills the non-loss val_ columns, the last
    one always, and best.pt follows the config's monitor."""
    cfg = config.load(path, _sets(path, idx))
    args = [x for s in _sets(path, idx) for x in ("--set", s)]
    cli("train", path, *args, "--quiet")
    run = next(runs_dir.iterdir())
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    extra = [c for c in rows[0] if c.startswith("val_") and c != "val_loss"]
    assert extra, list(rows[0])
    assert all(rows[-1][c] != "" for c in extra), rows[-1]
    assert rows[-1][cfg.train.monitor] != ""
    best = json.loads((run / "run.json").read_text())["best"]
    assert best["monitor"] == cfg.train.monitor
