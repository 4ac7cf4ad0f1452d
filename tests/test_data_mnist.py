"""mnist / fashion_mnist: finding files, normalisation, subsets, downloads (offline), real-data training."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmctl.data import mnist as mn
from lstmctl.data.base import Task
from lstmctl.data.facts import ImageFacts
from lstmctl.data.idx import write_idx
from lstmctl.errors import UserError

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


def striped(labels: np.ndarray, rng) -> np.ndarray:
    """Images a model can learn from: noise (0..63) with two columns lit (255) in every row, at
    columns 2k+4 and 2k+5 for class k: each row a row-by-row LSTM reads shows the class."""
    images = rng.integers(0, 64, (len(labels), 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, :, 2 * k + 4 : 2 * k + 6] = 255
    return images


def fake_files(folder: Path, n_train=40, n_test=12, gz=True, seed=0, learnable=False) -> dict[str, str]:
    """Four small IDX files, random images (or striped by class: learnable); returns their md5s by
    file name (for the download tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_labels, test_labels = (np.arange(n) % 10 for n in (n_train, n_test))

    def images(labels):
        return striped(labels, rng) if learnable else rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)

    arrays = {
        "train-images-idx3-ubyte": images(train_labels),
        "train-labels-idx1-ubyte": train_labels.astype(np.uint8),
        "t10k-images-idx3-ubyte": images(test_labels),
        "t10k-labels-idx1-ubyte": test_labels.astype(np.uint8),
    }
    md5 = {}
    for stem, arr in arrays.items():
        p = write_idx(folder / (stem + (".gz" if gz else "")), arr)
        md5[p.name] = hashlib.md5(p.read_bytes()).hexdigest()
    return md5


@pytest.fixture
def no_system(monkeypatch, tmp_path):
    """No cache or system folders: only what a test puts in place counts."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTMCTL_DATA_DIR", raising=False)
    for name in ("mnist", "fashion_mnist"):
        monkeypatch.setitem(mn.SOURCES, name, dataclasses.replace(mn.SOURCES[name], system_dirs=(str(tmp_path / "sys"),)))


def build(name="mnist", val_fraction=0.0, **kw):
    builder = mn.build_mnist if name == "mnist" else mn.build_fashion_mnist
    return builder(mn.MnistParams(**kw), seed=0, val_fraction=val_fraction)


@pytest.mark.parametrize("gz", [True, False])
def test_shapes_dtypes_and_standard_normalisation(tmp_path, no_system, gz):
    fake_files(tmp_path / "d", gz=gz)
    b = build(root=str(tmp_path / "d"), val_fraction=0.25)
    assert b.task is Task.CLASSIFICATION and b.input_size == 28 and b.output_size == 10
    assert b.train.x.shape == (30, 28, 28) and b.val.x.shape == (10, 28, 28) and b.test.x.shape == (12, 28, 28)
    assert b.train.x.dtype == torch.float32 and b.train.y.dtype == torch.int64
    assert int(b.train.y.min()) >= 0 and int(b.train.y.max()) <= 9
    # standardised with the statistics of the training images alone
    assert abs(float(b.train.x.mean())) < 1e-5 and abs(float(b.train.x.std()) - 1) < 1e-3
    assert b.state["normalize"] == "standard" and 0 < b.state["pixel_std"]
    assert isinstance(b.facts, ImageFacts) and b.facts.image_shape == [28, 28] and len(b.facts.class_names) == 10
    # the facts' pixel scale maps inputs back to 0..255
    pix = b.test.x * b.facts.pixel_scale + b.facts.pixel_offset
    assert float(pix.min()) > -1e-3 and float(pix.max()) < 255 + 1e-3


def test_unit_and_none_normalisation_subset_and_saved_state(tmp_path, no_system):
    fake_files(tmp_path / "d")
    unit = build(root=str(tmp_path / "d"), normalize="unit", subset=5)
    assert len(unit.train) == 5 and len(unit.test) == 5
    assert 0 <= float(unit.train.x.min()) and float(unit.train.x.max()) <= 1
    raw = build(root=str(tmp_path / "d"), normalize="none", val_images=0)
    assert float(raw.train.x.max()) > 1 and torch.equal(raw.train.x.round(), raw.train.x)
    # a run recorded before the validation carve (no val_images in its state) is rebuilt as it was trained
    again = mn.build_mnist(mn.MnistParams(root=str(tmp_path / "d"), subset=5), seed=0, state={"pixel_mean": 10.0, "pixel_std": 2.0})
    torch.testing.assert_close(again.train.x, (raw.train.x[:5] - 10) / 2)
    assert again.val is None and "val_images" not in again.state


# ---------------------------------------------------------------- the validation carve


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(r.numpy().tobytes()) for r in x.reshape(len(x), -1).to(torch.uint8)}


def test_validation_carve_is_fixed_seeded_disjoint_and_leaves_test_alone(tmp_path, no_system):
    """The carve follows data.val_seed, never the run's seed; it never touches the test files."""
    fake_files(tmp_path / "d", n_train=120, n_test=12)
    p = mn.MnistParams(root=str(tmp_path / "d"), normalize="none", val_images=8)
    runs = [mn.build_mnist(p, seed=s) for s in (0, 1, 7)]
    a = runs[0]
    assert len(a.val) == 8 and len(a.train) == 112
    for b in runs[1:]:  # every seed of a group validates, trains and tests on the same images
        assert torch.equal(b.val.x, a.val.x) and torch.equal(b.val.y, a.val.y) and torch.equal(b.train.x, a.train.x)
    assert not _rows(a.val.x) & _rows(a.train.x)  # disjoint (the fake images are all distinct)
    whole = mn.build_mnist(p.model_copy(update={"val_images": 0}), seed=0)
    assert whole.val is None and _rows(a.val.x) | _rows(a.train.x) == _rows(whole.train.x)
    assert torch.equal(a.test.x, whole.test.x) and torch.equal(a.test.y, whole.test.y)  # test untouched, in file order
    # drawn at random, not the last images of the file; another val_seed draws others
    assert not torch.equal(a.val.x, whole.train.x[-8:])
    other = mn.build_mnist(p.model_copy(update={"val_seed": 1}), seed=0)
    assert not torch.equal(other.val.x, a.val.x)
    assert a.state["val_images"] == 8 and a.state["val_seed"] == 0
    # independent of the global RNG state
    torch.manual_seed(123)
    assert torch.equal(mn.build_mnist(p, seed=0).val.x, a.val.x)


def test_carve_counts_small_files_and_val_fraction(tmp_path, no_system):
    fake_files(tmp_path / "d", n_train=40)
    root = str(tmp_path / "d")
    assert len(build(root=root).val) == 3  # 5,000 asked: a twelfth of the 40 images at most
    assert len(build(root=root, val_images=2).val) == 2
    assert build(root=root, val_images=0).val is None
    assert len(build(root=root, val_fraction=0.25).val) == 10  # an explicit share replaces val_images
    with pytest.raises(UserError, match="leaves no training data"):
        build(root=root, val_fraction=0.999)
    fake_files(tmp_path / "four", n_train=4)
    b = build(root=str(tmp_path / "four"))
    assert (len(b.train), len(b.val)) == (3, 1)  # at least one validation image
    fake_files(tmp_path / "one", n_train=1)
    assert build(root=str(tmp_path / "one")).val is None  # nothing to carve from a single image
    assert mn.val_count(60_000, 5000, 0.0) == 5000 and mn.val_count(60_000, 9000, 0.0) == 5000


def test_subset_takes_a_prefix_of_the_fixed_carve(tmp_path, no_system):
    """subset never changes which images validate, and never leaves validation empty."""
    fake_files(tmp_path / "d", n_train=240, n_test=30)
    p = mn.MnistParams(root=str(tmp_path / "d"), normalize="none", val_images=20)
    full = mn.build_mnist(p, seed=0)
    for n in (1, 5, 50):
        small = mn.build_mnist(p.model_copy(update={"subset": n}), seed=3)
        assert len(small.train) == n and len(small.val) == min(n, 20) and len(small.test) == min(n, 30)
        assert torch.equal(small.val.x, full.val.x[: len(small.val)])
        assert torch.equal(small.train.x, full.train.x[:n]) and torch.equal(small.test.x, full.test.x[:n])
        assert small.state["val_images"] == 20  # the carve is recorded from the whole file


def test_reopened_run_keeps_its_recorded_carve(tmp_path, no_system):
    fake_files(tmp_path / "d", n_train=120)
    p = mn.MnistParams(root=str(tmp_path / "d"))
    first = mn.build_mnist(p.model_copy(update={"val_images": 6, "val_seed": 4}), seed=0)
    # reopened with its data_state.json: the recorded carve wins over the config's (default) values
    again = mn.build_mnist(p, seed=0, state=json.loads(json.dumps(first.state)))
    assert torch.equal(again.val.x, first.val.x) and torch.equal(again.train.x, first.train.x)
    assert again.state == first.state


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason=f"Fashion-MNIST files absent ({SYSTEM_FASHION})")
def test_real_fashion_mnist_carves_5000_balanced_images():
    b = mn.build_fashion_mnist(mn.MnistParams(normalize="none"), seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (55_000, 5_000, 10_000)
    counts = torch.bincount(b.val.y, minlength=10)
    assert int(counts.min()) > 400 and int(counts.max()) < 600  # a random draw: every class about 500 times
    assert b.state["val_images"] == 5000 and b.state["val_seed"] == 0


def test_search_order_env_and_cache(tmp_path, no_system, monkeypatch):
    fake_files(tmp_path / "cache" / "lstmctl" / "mnist", n_train=20)
    assert len(build(val_images=0).train) == 20  # the cache folder
    fake_files(tmp_path / "env" / "mnist", n_train=30)
    monkeypatch.setenv("LSTMCTL_DATA_DIR", str(tmp_path / "env"))
    assert len(build(val_images=0).train) == 30  # $LSTMCTL_DATA_DIR/<name> before the cache
    fake_files(tmp_path / "root", n_train=10)
    assert len(build(root=str(tmp_path / "root"), val_images=0).train) == 10  # data.root first


def test_missing_files_error_names_files_dirs_and_remedies(tmp_path, no_system):
    (tmp_path / "half").mkdir()
    write_idx(tmp_path / "half" / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(UserError) as e:
        build("fashion_mnist", root=str(tmp_path / "half"))
    msg = str(e.value)
    assert "\n" not in msg
    for f in mn.FILES:
        assert f in msg
    for d in (tmp_path / "half", tmp_path / "cache" / "lstmctl" / "fashion_mnist", tmp_path / "sys"):
        assert str(d) in msg
    assert "lacks train-labels-idx1-ubyte" in msg
    assert "data.download: true" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_mismatched_counts_and_bad_labels(tmp_path, no_system):
    fake_files(tmp_path / "d")
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte.gz", np.zeros(39, np.uint8))
    with pytest.raises(UserError, match="40 images but train-labels holds 39 labels"):
        build(root=str(tmp_path / "d"))
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte.gz", np.full(40, 12, np.uint8))
    with pytest.raises(UserError, match="labels must be 0..9"):
        build(root=str(tmp_path / "d"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/mirror; yields (base_url, md5s)."""
    md5 = fake_files(tmp_path / "mirror")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path / "mirror")))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", md5
    server.shutdown()
    server.server_close()


def _with_md5(monkeypatch, md5):
    monkeypatch.setitem(mn.SOURCES, "mnist", dataclasses.replace(mn.SOURCES["mnist"], md5=md5))


def test_download_over_http_with_a_dead_mirror_first(tmp_path, no_system, monkeypatch, http_mirror):
    url, md5 = http_mirror
    _with_md5(monkeypatch, md5)
    dead = "http://127.0.0.1:9/"  # discard port: connection refused
    b = build(root=str(tmp_path / "dl"), download=True, mirrors=[dead, url])
    assert len(b.train) + len(b.val) == 40
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(md5)  # no .part files left
    for name, h in md5.items():
        assert hashlib.md5((tmp_path / "dl" / name).read_bytes()).hexdigest() == h
    # second build finds the files and downloads nothing (the mirror list is unreachable now)
    assert len(build(root=str(tmp_path / "dl"), download=True, mirrors=[dead], val_images=0).train) == 40


def test_download_from_file_url_into_cache(tmp_path, no_system, monkeypatch):
    md5 = fake_files(tmp_path / "mirror")
    _with_md5(monkeypatch, md5)
    b = build(download=True, mirrors=[(tmp_path / "mirror").as_uri()])
    assert len(b.test) == 12
    assert (tmp_path / "cache" / "lstmctl" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_checksum_mismatch_and_failed_download_are_clear_errors(tmp_path, no_system, monkeypatch, http_mirror):
    url, md5 = http_mirror
    _with_md5(monkeypatch, {k: "0" * 32 for k in md5})
    with pytest.raises(UserError, match=r"could not download MNIST file train-images-idx3-ubyte.gz: .*md5 mismatch"):
        build(root=str(tmp_path / "dl"), download=True, mirrors=[url])
    assert list((tmp_path / "dl").iterdir()) == []  # nothing half-written under any name
    with pytest.raises(UserError) as e:
        build(root=str(tmp_path / "dl"), download=True, mirrors=["http://127.0.0.1:9/"])
    assert "could not download MNIST" in str(e.value) and "Check the network" in str(e.value)
    assert "\n" not in str(e.value)


def test_cli_missing_data_is_exit_2_one_line(tmp_path, no_system, cli, write_config):
    path = write_config({"data": {"name": "mnist", "root": "nowhere"}})
    r = cli("train", path, ok=False)
    assert r.exit_code == 2
    assert "MNIST files not found" in r.output and "Traceback" not in r.output
    assert str(tmp_path / "nowhere") in r.output  # root is relative to the config file's folder


def test_cli_trains_and_evaluates_on_small_files(tmp_path, no_system, cli, write_config):
    """Striped images (the class in every row): 3 epochs score 1.0 on the 50 test images; untrained
    (train.lr=1e-9) 0.08, chance 0.1."""
    fake_files(tmp_path / "d", n_train=200, n_test=50, learnable=True)
    path = write_config({"data": {"name": "mnist", "root": "d"}, "model": {"name": "lstm", "hidden_size": 8},
                         "train": {"epochs": 3, "batch_size": 16, "lr": 0.03, "val_fraction": 0.2}})
    cli("train", path, "--quiet")
    result = json.loads(cli("eval", "latest", "--json").output)
    m = result["metrics"]
    assert result["task"] == "classification" and np.array(m["confusion_matrix"]).sum() == 50
    assert m["accuracy"] > 0.6, m["accuracy"]


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason=f"Fashion-MNIST files absent ({SYSTEM_FASHION}); "
                    "install them with: apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_row_lstm_beats_chance(cli, write_config):
    """A short training run on the real files: far above the 10% of chance."""
    path = write_config({
        "data": {"name": "fashion_mnist", "subset": 2000},
        "model": {"name": "lstm", "hidden_size": 32},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01},
    })
    cli("train", path, "--quiet")  # its seconds: benchmarks/bench_mnist_load.py
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    assert m["accuracy"] > 0.5, m["accuracy"]  # chance: 0.1


@pytest.mark.parametrize("name", ["mnist.yaml", "fashion_mnist.yaml"])
def test_shipped_image_configs_run(tmp_path, no_system, cli, name):
    """The shipped configs, shrunk, on small files in data.root (the real run is measured in docs/datasets.md)."""
    fake_files(tmp_path / "d")
    repo = Path(__file__).resolve().parents[1]
    cli("train", repo / "configs" / name, "--set", f"data.root={tmp_path / 'd'}", "--set", "train.epochs=1",
        "--set", "model.hidden_size=8", "--quiet")
    result = json.loads(cli("eval", "latest", "--json").output)
    assert result["task"] == "classification" and len(result["metrics"]["confusion_matrix"]) == 10
