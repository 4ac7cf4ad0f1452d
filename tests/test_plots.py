"""Every figure kind is produced by `lstmctl plot` and is a real image of sensible size."""

import struct
import typing
from pathlib import Path

import numpy as np
import pytest

import lstmctl.config  # noqa: F401  (registers the built-in datasets)
from lstmctl.data import facts as F
from lstmctl.data.base import Facts
from lstmctl.data.idx import write_idx
from lstmctl.plots.tasks import FIGURES, figure_for
from lstmctl.registry import DATASETS

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


# ---------------------------------------------------------------- a dataset cannot silently break a figure

TINY_PARAMS = {  # every built-in dataset, as small as it gets (the files are written by the test)
    "sine_cosine": {"points": 20, "seq_len": 5},
    "random_sequences": {"n_train": 4, "n_test": 2, "steps": 3},
    "adding": {"length": 6, "n_train": 4, "n_test": 2},
    "copy": {"copy_length": 2, "delay": 1, "n_train": 4, "n_test": 2},
    "inline": {"sequences": [[0, 1], [1, 0]], "targets": [0, 1]},
    "mnist": {"root": "{idx}"},
    "fashion_mnist": {"root": "{idx}"},
    "tabular": {"path": "{csv}", "target": "v", "window": 3},
}


def _tiny_files(tmp_path: Path) -> dict[str, str]:
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    write_idx(idx / "train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    write_idx(idx / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(idx / "t10k-labels-idx1-ubyte", np.arange(2, dtype=np.uint8))
    csv = tmp_path / "s.csv"
    csv.write_text("v\n" + "".join(f"{i % 7}\n" for i in range(30)))
    return {"{idx}": str(idx), "{csv}": str(csv)}


def test_every_builtin_dataset_gets_its_own_figure_or_none(tmp_path):
    """Each built-in returns typed facts; a figure is chosen only for facts of its own type (or a subclass)."""
    files = _tiny_files(tmp_path)
    builtins = [e for e in DATASETS if e.builder.__module__.startswith("lstmctl.data.")]
    assert {e.name for e in builtins} == set(TINY_PARAMS)  # a new built-in needs a line above
    for entry in builtins:
        raw = {k: files.get(v, v) if isinstance(v, str) else v for k, v in TINY_PARAMS[entry.name].items()}
        b = entry.builder(entry.parse(raw), seed=0, val_fraction=0.0, state={})
        assert isinstance(b.facts, Facts), entry.name
        figure = figure_for(b.facts)
        if type(b.facts) in (Facts, F.InlineFacts):
            assert figure is None, entry.name
        else:
            assert figure is not None, f"{entry.name}: {type(b.facts).__name__} has no figure"
            owners = [k for k, f in FIGURES.items() if f is figure]
            assert any(isinstance(b.facts, k) for k in owners), entry.name
    # each figure is declared for exactly the facts type it is registered under
    for facts_type, fn in FIGURES.items():
        assert typing.get_type_hints(fn)["facts"] is facts_type, fn.__name__


def test_a_figure_never_receives_facts_of_another_type():
    kinds = [F.Facts, F.CurveFacts, F.ImageFacts, F.AddingFacts, F.CopyFacts, F.SeriesFacts, F.InlineFacts]

    class MySeries(F.SeriesFacts):  # a plugin's refinement keeps the series figure
        pass

    class LooksLikeSeries(Facts):  # same fields by name, but not a SeriesFacts: no figure
        target = "y"
        rows: dict = {}

    for kind in [*kinds, MySeries, LooksLikeSeries]:
        facts = object.__new__(kind)  # only the type matters to the choice
        figure = figure_for(facts)
        for facts_type, fn in FIGURES.items():
            if figure is fn:
                assert issubclass(kind, facts_type), (kind.__name__, fn.__name__)
    assert figure_for(object.__new__(MySeries)) is FIGURES[F.SeriesFacts]
    assert figure_for(object.__new__(LooksLikeSeries)) is None
    assert figure_for(Facts()) is None and figure_for(object.__new__(F.InlineFacts)) is None
