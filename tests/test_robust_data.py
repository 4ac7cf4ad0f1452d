"""Bad data files through the CLI: each is exit 2, one line naming the problem, no traceback, and no
run directory left behind for a run that never started."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lstmctl.data import mnist as mn
from lstmctl.data.idx import write_idx
from tests.test_data_mnist import striped

GOOD_CSV = "date,x,y\n" + "".join(f"2020-01-{i + 1:02d},{i * 0.5},{i}\n" for i in range(30))

CSV_CASES = {
    # name: (file content or None for a missing file, extra data params, words the one line must hold)
    "missing": (None, {}, ["CSV file not found", "series.csv"]),
    "empty": ("", {}, ["is empty", "header row"]),
    "header-only": ("date,x,y\n", {}, ["has a header", "no data rows"]),
    "non-numeric": (GOOD_CSV.replace("2020-01-05,2.0,4", "2020-01-05,two,4"), {}, ["column 'x'", "not numeric", "'two'"]),
    "no-target-column": (GOOD_CSV, {"target": "z"}, ["column 'z' is not in series.csv", "columns: date, x, y"]),
    "nan-under-error": (GOOD_CSV.replace("2020-01-07,3.0,6", "2020-01-07,,6"), {}, ["1 missing value", "line 8 column 'x'", "data.missing"]),
    "too-short": ("date,x,y\n" + "".join(f"d{i},{i},{i}\n" for i in range(6)), {"window": 5, "horizon": 3}, ["6 usable rows", "window (5) + horizon (3) needs 8"]),
    "ragged": (GOOD_CSV + "2020-02-01,1\n", {}, ["fields but the header has 3"]),
    "not-utf8": (b"date,x,y\n\xff\xfe,1,2\n", {}, ["not UTF-8"]),
}


def one_line(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    low = lines[0].lower()
    for n in needles:
        assert n.lower() in low, lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_csv_files(cli, tmp_path, runs_dir, write_config, case):
    content, params, needles = CSV_CASES[case]
    path = tmp_path / "series.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    data = {"name": "tabular", "path": str(path), "target": "y", "features": ["x", "y"], "window": 4,
            "date_column": "date", "missing": "error", **params}
    cfg = write_config({"data": data, "train.epochs": 1})
    one_line(cli("train", cfg, ok=False), *needles)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    """Four small, valid MNIST files in their own folder; no cache or system folder is searched."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTMCTL_DATA_DIR", raising=False)
    monkeypatch.setitem(mn.SOURCES, "mnist", dataclasses.replace(mn.SOURCES["mnist"], system_dirs=()))
    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    train_labels, test_labels = np.arange(100) % 10, np.arange(20) % 10
    write_idx(root / "train-images-idx3-ubyte", striped(train_labels, rng), compress=False)
    write_idx(root / "train-labels-idx1-ubyte", train_labels.astype(np.uint8), compress=False)
    write_idx(root / "t10k-images-idx3-ubyte", striped(test_labels, rng), compress=False)
    write_idx(root / "t10k-labels-idx1-ubyte", test_labels.astype(np.uint8), compress=False)
    return root


def _mnist_config(write_config, root, update: dict | None = None):
    return write_config({"data": {"name": "mnist", "root": str(root)}, "model.hidden_size": 4, "train.epochs": 1,
                         **(update or {})})


def test_small_valid_mnist_files_train(cli, write_config, mnist_root):
    """The files read back whole and in order: 3 epochs on the striped images score 1.0 on the 20
    test images; untrained (train.lr=1e-9) 0.15, chance 0.1."""
    update = {"model.hidden_size": 8, "train.epochs": 3, "train.lr": 0.03, "train.batch_size": 10}
    cli("train", _mnist_config(write_config, mnist_root, update), "--quiet")
    result = json.loads(cli("eval", "latest", "--json").output)
    assert result["task"] == "classification" and sum(map(sum, result["metrics"]["confusion_matrix"])) == 20
    assert result["metrics"]["accuracy"] > 0.6, result["metrics"]


@pytest.mark.parametrize(
    "damage, needles",
    [
        (lambda b: b[: len(b) // 2], ["train-images-idx3-ubyte is truncated"]),
        (lambda b: b[:10], ["train-images-idx3-ubyte is truncated"]),
        (lambda b: b"\x12\x34\x56\x78" + b[4:], ["is not an IDX file", "bad magic number 0x12345678"]),
        (lambda b: b"\x1f\x8b" + b[2:], ["damaged gzip file"]),
        (lambda b: b"", ["is not an IDX file"]),
    ],
    ids=["truncated", "header-cut", "wrong-magic", "fake-gzip", "empty"],
)
def test_damaged_mnist_files(cli, write_config, runs_dir, mnist_root, damage, needles):
    f = mnist_root / "train-images-idx3-ubyte"
    f.write_bytes(damage(f.read_bytes()))
    one_line(cli("train", _mnist_config(write_config, mnist_root), ok=False), *needles)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
