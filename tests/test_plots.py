"""Every figure kind is produced by `lstmctl plot` and is a real image of sensible size."""

import struct
from pathlib import Path

import pytest



PNG = b"\x89PNG\r\n\x1a\n"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG), path
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    return width, height


def plot(cli, write_config, update, *extra):
    cli("train", write_config(update, base={"name": "p", "device": "cpu", "data": {}, "model": {"name": "lstm", "hidden_size": 8},
                                            "train": {"epochs": 2, "batch_size": 32}}), "--quiet")
    out = cli("plot", "latest", *extra).stdout.split()
    return {Path(p).name: Path(p) for p in out}


def check(paths: dict, names: set[str]):
    assert set(paths) == names
    for p in paths.values():
        w, h = png_size(p)
        assert 500 <= w <= 2500 and 300 <= h <= 2500, (p.name, w, h)
        assert p.stat().st_size > 15_000, p.name  # not an empty canvas


def test_curve_and_loss_with_learning_rate(cli, write_config):
    paths = plot(cli, write_config, {"data": {"name": "sine_cosine", "points": 60, "seq_len": 10},
                                     "train.scheduler": {"name": "step", "step_size": 1}, "train.val_fraction": 0.3})
    check(paths, {"loss.png", "predictions.png"})


def test_memory_tasks(cli, write_config):
    check(plot(cli, write_config, {"data": {"name": "adding", "length": 20, "n_train": 128, "n_test": 64}}),
          {"loss.png", "memory.png"})
    check(plot(cli, write_config, {"data": {"name": "copy", "copy_length": 3, "delay": 2, "n_train": 128, "n_test": 64}}),
          {"loss.png", "memory.png"})


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST files absent: apt-get install dataset-fashion-mnist")
def test_classification_figures(cli, write_config):
    paths = plot(cli, write_config, {"data": {"name": "fashion_mnist", "subset": 512}})
    check(paths, {"loss.png", "confusion.png", "per_class.png", "samples.png"})


@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_other_formats(cli, write_config, fmt, magic):
    paths = plot(cli, write_config, {"data": {"name": "sine_cosine", "points": 40, "seq_len": 10}}, "--format", fmt)
    assert set(paths) == {f"loss.{fmt}", f"predictions.{fmt}"}
    assert all(p.read_bytes().startswith(magic) for p in paths.values())
    r = cli("plot", "latest", "--format", "gif", ok=False)
    assert r.exit_code == 2 and "--format must be one of" in r.output


def test_forecast_figures(cli):
    from tests.conftest import CONFIGS

    cli("train", CONFIGS / "us_macro.yaml", "--quiet", "--set", "train.epochs=3")
    paths = {Path(p).name: Path(p) for p in cli("plot", "latest").stdout.split()}
    check(paths, {"loss.png", "forecast.png", "residuals.png"})
