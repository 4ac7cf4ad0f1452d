"""Options of the image datasets: rows read per step (data.rows_per_step) and augmentation
(data.hflip, data.shift): what each does to the data, that only training batches are augmented, and
that an augmented run is reproducible and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lstmctl.data import mnist as mn
from lstmctl.data.augment import augmenter
from lstmctl.train.setup import batch_generator

from robust_util import assert_same_weights

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not SYSTEM_FASHION.is_dir(), reason=f"Fashion-MNIST files absent ({SYSTEM_FASHION})"
)


def images(b=64, seed=0):
    return torch.randn(b, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_no_augmentation_is_no_transform():
    assert augmenter(False, 0, background=0.0) is None


def test_hflip_mirrors_about_half_of_the_images_and_leaves_the_rest():
    x = images(400)
    out = augmenter(True, 0, background=0.0)(x, torch.Generator().manual_seed(1))
    mirrored = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, x)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, x)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image either mirrored or untouched
    assert 150 < sum(mirrored) < 250  # p = 0.5 over 400 images (binomial sd 10)


def test_shift_moves_each_image_within_range_and_fills_with_background():
    x = images(200)
    bg = -0.42
    out = augmenter(False, 2, background=bg)(x, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=bg)
    offsets = set()
    for o, p in zip(out, padded):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(o, p[dy:dy + 28, dx:dx + 28])]
        assert found, "an augmented image is not a 28x28 crop of the padded original"
        offsets.add(found[0])
    assert len(offsets) > 15  # the 25 offsets are all drawn, not one for the whole batch
    assert (out == bg).any()  # the background fills what moved in


def test_augmenting_batches_of_two_rows_per_step_acts_on_the_images():
    x = images(32)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    one_row = augmenter(True, 1, background=-1.0)(x, g())
    two_rows = augmenter(True, 1, background=-1.0)(x.reshape(32, 14, 56), g())
    assert two_rows.shape == (32, 14, 56)
    assert torch.equal(two_rows.reshape(32, 28, 28), one_row)


@needs_fashion
def test_rows_per_step_lays_rows_side_by_side():
    one = mn.build_fashion_mnist(mn.MnistParams(subset=50, val_images=0), seed=0)
    two = mn.build_fashion_mnist(mn.MnistParams(subset=50, val_images=0, rows_per_step=2), seed=0)
    assert (one.input_size, two.input_size) == (28, 56)
    assert two.train.x.shape == (50, 14, 56) and two.test.x.shape == (50, 14, 56)
    assert torch.equal(two.train.x.reshape(50, 28, 28), one.train.x)
    assert torch.equal(two.test.x[:, 3, 28:], one.test.x[:, 7])  # step 3 holds rows 6 and 7


def test_rows_per_step_must_divide_28():
    with pytest.raises(ValueError, match="rows_per_step"):
        mn.MnistParams(rows_per_step=3)


def test_batch_generator_depends_on_seed_epoch_step_and_rank_only():
    draw = lambda *a: torch.rand(4, generator=batch_generator(*a))  # noqa: E731
    assert torch.equal(draw(0, 3, 7, 0), draw(0, 3, 7, 0))
    variants = [(1, 3, 7, 0), (0, 4, 7, 0), (0, 3, 8, 0), (0, 3, 7, 1)]
    for v in variants:
        assert not torch.equal(draw(0, 3, 7, 0), draw(*v)), v


# ---------------------------------------------------------------- through the real CLI

SMALL = ["--set", "data.subset=256", "--set", "data.val_images=60", "--set", "model.hidden_size=8",
         "--set", "train.batch_size=64", "--set", "train.scheduler.name=none", "--quiet", "--json"]
CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "fashion_mnist.yaml")


def train(cli, *extra):
    return json.loads(cli("train", CONFIG, *SMALL, *extra).stdout)["run"]


@needs_fashion
def test_augmented_training_is_reproducible_differs_from_plain_and_resumes_exactly(cli, runs_dir):
    aug = ["--set", "data.hflip=true", "--set", "data.shift=1"]
    plain = train(cli, "--set", "train.epochs=2")
    a = train(cli, "--set", "train.epochs=2", *aug)
    b = train(cli, "--set", "train.epochs=2", *aug)
    last = lambda r: runs_dir / r / "checkpoints" / "last.pt"  # noqa: E731
    assert_same_weights(last(a), last(b))  # same seed, same augmentation draws
    with pytest.raises(AssertionError):
        assert_same_weights(last(a), last(plain))  # the augmentation acted on the training batches
    # validation is never augmented: an augmented run's epoch-2 validation equals eval of its weights
    metrics = (runs_dir / a / "metrics.csv").read_text().splitlines()
    header, row2 = metrics[0].split(","), metrics[2].split(",")
    val_acc = float(row2[header.index("val_accuracy")])
    res = json.loads(cli("eval", a, "--split", "val", "--checkpoint", "last", "--json").stdout)
    assert res["metrics"]["accuracy"] == pytest.approx(val_acc, abs=1e-9)
    # stop after epoch 1, resume to 2: the same weights and optimizer as the uninterrupted run
    c = train(cli, "--set", "train.epochs=1", *aug)
    cli("resume", c, "--epochs", "2", "--quiet")
    assert_same_weights(last(c), last(a))


@needs_fashion
def test_two_rows_per_step_trains_evaluates_and_draws_the_images(cli, runs_dir, tmp_path):
    r = train(cli, "--set", "train.epochs=1", "--set", "data.rows_per_step=2", "--set", "data.hflip=true")
    res = json.loads(cli("eval", r, "--json").stdout)
    assert res["metrics"]["confusion_matrix"] and sum(map(sum, res["metrics"]["confusion_matrix"])) == 256
    cli("plot", r)
    grid = runs_dir / r / "plots" / "samples.png"
    assert grid.stat().st_size > 10_000  # the 28x28 images, put back together from 14 steps of 56 pixels
