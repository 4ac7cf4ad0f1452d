"""model.conv: the convolutional stem in front of the recurrent layers (lstmctl/models/conv.py).

- the stem is a 3×3 convolution, ReLU and 2×2 max pooling, checked against a hand computation with
  chosen kernels, and it rebuilds the same image whatever the rows per step;
- a model with a stem trains and evaluates through the CLI, its checkpoint holds the stem, and
  `lstmctl inspect` recomputes the model's own prediction through it;
- a width that does not divide the step's features, and a per-step task, are one line, exit 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lstmctl.config  # noqa: F401  (registers the built-in families)
from lstmctl import load_run
from lstmctl.data.base import Task
from lstmctl.errors import UserError
from lstmctl.inspection import trace
from lstmctl.models.base import build_with_stem
from lstmctl.models.conv import ConvParams, ConvRows, max_pool_2x2
from lstmctl.registry import MODELS
from tests.test_data_mnist import fake_files


def pooled_by_hand(img: np.ndarray) -> np.ndarray:
    """max over each 2×2 block of an (R, W) array, odd edges dropped."""
    r, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:r, :w].reshape(r // 2, 2, w // 2, 2).max(axis=(1, 3))


def test_stem_is_convolution_relu_pool_by_hand():
    """Kernels chosen so the convolution is the pixel minus 0.5 (channel 0), its negation minus 0.5
    (channel 1) and the pixel above it minus 0.5 (channel 2, zero above the first row): the stem must
    give max-of-2×2 of each after a ReLU, one step per pooled row, channel 0's columns first (many
    blocks are all below the ReLU's 0; the pixel above crosses from one step's rows into the next)."""
    stem = ConvRows(12, ConvParams(channels=3, width=6))  # 2 rows of 6 pixels per step
    with torch.no_grad():
        stem.conv.weight.zero_()
        stem.conv.bias.fill_(-0.5)
        stem.conv.weight[0, 0, 1, 1] = 1.0
        stem.conv.weight[1, 0, 1, 1] = -1.0
        stem.conv.weight[2, 0, 0, 1] = 1.0  # the kernel's row above its centre
    img = np.random.default_rng(0).normal(size=(9, 6)).astype(np.float32)  # 9 rows: the odd last one is dropped
    x = torch.from_numpy(img[:8]).reshape(1, 4, 12)
    got = stem(x).detach().numpy()
    above = np.vstack([np.zeros((1, 6), np.float32), img[:7]])  # each pixel's upper neighbour (padding: 0)
    want = np.concatenate([pooled_by_hand(np.maximum(m - 0.5, 0)) for m in (img[:8], -img[:8], above)], axis=1)
    assert got.shape == (1, 4, 9)
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-7)
    # the same image one row per step: the stem rebuilds it, so the output is the same
    one_row = ConvRows(6, ConvParams(channels=3, width=6))
    one_row.load_state_dict(stem.state_dict())
    np.testing.assert_array_equal(one_row(torch.from_numpy(img[:8]).reshape(1, 8, 6)).detach().numpy(), got)
    # an odd number of rows: the last one is dropped by the pooling
    assert one_row(torch.from_numpy(img).reshape(1, 9, 6)).shape == (1, 4, 9)
    with pytest.raises(UserError, match="at least 2"):  # one row has no pair to pool
        one_row(torch.from_numpy(img[:1]).reshape(1, 1, 6))


def test_pooling_without_gradient_is_max_pool2d():
    """Validation and eval pool with four strided maxima (no autograd): the same numbers as
    max_pool2d, odd rows and columns dropped alike."""
    maps = torch.randn(3, 4, 9, 7, requires_grad=True)
    with torch.no_grad():
        fast = max_pool_2x2(maps)
    assert torch.equal(fast, torch.nn.functional.max_pool2d(maps, 2))
    assert max_pool_2x2(maps).grad_fn is not None  # training keeps max_pool2d's backward


def test_trace_goes_through_the_stem():
    """inspect's recomputed recurrence reads the stem's features: its prediction is the model's own."""
    torch.manual_seed(0)
    entry = MODELS.get("lstm")
    params = entry.parse({"hidden_size": 5, "pool": "max", "conv": {"channels": 3, "width": 8}})
    model = build_with_stem(entry.builder, params, 16, 4, Task.CLASSIFICATION).eval()
    assert model.backbone.input_size == 3 * 4  # channels × width // 2
    x = torch.randn(5, 6, 16)
    with torch.no_grad():
        pred, _ = model(x)
    tr = trace(model, x)
    assert tr.output.shape == (5, 6, 5)  # 12 rows pooled to 6 steps
    assert float((tr.prediction - pred).abs().max()) <= 1e-6


@pytest.mark.parametrize("rows_per_step", [1, 2])
def test_cli_trains_a_conv_model_and_inspects_it(tmp_path, cli, write_config, rows_per_step):
    """Striped images (the class in every row): a conv stem + LSTM learns them (untrained ~0.1), the
    checkpoint holds the stem, eval reopens it, inspect reads through it: 14 gate steps, whatever the
    rows per step of the input (28 or 14 steps)."""
    fake_files(tmp_path / "d", n_train=200, n_test=50, learnable=True)
    path = write_config({"data": {"name": "mnist", "root": "d", "rows_per_step": rows_per_step},
                         "model": {"name": "lstm", "hidden_size": 8, "pool": "max", "conv": {"channels": 4}},
                         "train": {"epochs": 4, "batch_size": 16, "lr": 0.03, "val_fraction": 0.2}})
    cli("train", path, "--quiet")
    run = next(p for p in (tmp_path / "runs").iterdir() if (p / "checkpoints").is_dir())
    weights = torch.load(run / "checkpoints" / "best.pt", weights_only=False)["model"]
    assert weights["stem.conv.weight"].shape == (4, 1, 3, 3)
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    assert m["accuracy"] > 0.6, m["accuracy"]
    out = json.loads(cli("inspect", "latest", "--json").output)
    assert out["saturation"] and out["units"], out
    assert [len(g["norms"]) for g in out["gradient_flow"]] == [14], out["gradient_flow"]
    assert (run / "plots" / "inspect-gates-l0.png").exists()
    if rows_per_step == 1:
        with pytest.raises(UserError, match="at least 2"):  # a single row: one line, not a traceback
            load_run("latest").predict(np.zeros((1, 28)))


@pytest.mark.parametrize("update, says", [
    ({"model.conv": {"channels": 4, "width": 5}}, "not whole rows of width 5"),
    ({"data": {"name": "sine_cosine", "points": 40, "seq_len": 10}, "model.conv": {"channels": 4, "width": 2}}, "per-sequence tasks only"),
])
def test_bad_conv_is_one_line(tmp_path, cli, write_config, update, says):
    fake_files(tmp_path / "d", n_train=40, n_test=10)
    base = {"data": {"name": "mnist", "root": "d"}, "model": {"name": "lstm", "hidden_size": 4},
            "train": {"epochs": 1}}
    path = write_config({**base, **update})
    r = cli("train", path, "--quiet", ok=None)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and says in lines[0] and "Traceback" not in r.output, r.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
