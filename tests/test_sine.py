import math

import pytest
import torch

from lstmctl import config
from lstmctl.data.base import Task
from lstmctl.errors import UserError
from lstmctl.session import build_dataset


def bundle(**data):
    raw = {"data": {"name": "sine_cosine", **data}, "model": {"name": "lstm"}}
    return build_dataset(config.validate(raw))


def test_default_tutorial_split():
    b = bundle()
    assert b.task is Task.REGRESSION_STEP
    assert (b.input_size, b.output_size) == (1, 1)
    assert b.train.x.shape == (1, 100, 1) and b.test.x.shape == (1, 100, 1)
    assert b.train.x.dtype == torch.float32
    t = torch.linspace(0, 12 * math.pi, 200, dtype=torch.float64)
    assert torch.allclose(b.train.x[0, :, 0].double(), torch.sin(t[:100]), atol=1e-6)
    assert torch.allclose(b.test.y[0, :, 0].double(), torch.cos(t[100:]), atol=1e-6)
    assert b.facts.t["test"].min() > b.facts.t["train"].max()  # chronological


def test_sequences_and_validation():
    b = build_dataset(
        config.validate(
            {"data": {"name": "sine_cosine", "points": 100, "seq_len": 10}, "model": {"name": "lstm"}, "train": {"val_fraction": 0.2}}
        )
    )
    assert b.train.x.shape == (4, 10, 1)
    assert b.val.x.shape == (1, 10, 1)
    assert b.test.x.shape == (5, 10, 1)
    assert b.facts.t["val"].min() > b.facts.t["train"].max()


def test_phase_frequency_noise():
    b = bundle(phase=0.5, frequency=2.0)
    t = torch.linspace(0, 12 * math.pi, 200, dtype=torch.float64)
    assert torch.allclose(b.train.x[0, :, 0].double(), torch.sin(2 * t[:100] + 0.5), atol=1e-6)
    noisy = bundle(noise=0.1)
    again = bundle(noise=0.1)
    assert torch.equal(noisy.train.x, again.train.x)  # seeded
    assert not torch.equal(noisy.train.x, bundle().train.x)
    assert torch.equal(noisy.train.y, bundle().train.y)  # targets stay clean


def test_one_sequence_validation_is_the_block_before_the_test_span():
    """With one sequence per split, validation is the last share of the training points, its own sequence."""
    raw = {"data": {"name": "sine_cosine"}, "model": {"name": "lstm"}, "train": {"val_fraction": 0.2}}
    b = build_dataset(config.validate(raw))
    assert b.train.x.shape == (1, 80, 1) and b.val.x.shape == (1, 20, 1) and b.test.x.shape == (1, 100, 1)
    t = torch.linspace(0, 12 * math.pi, 200, dtype=torch.float64)
    assert torch.allclose(b.val.y[0, :, 0].double(), torch.cos(t[80:100]), atol=1e-6)
    assert torch.allclose(b.train.x[0, :, 0].double(), torch.sin(t[:80]), atol=1e-6)
    assert b.facts.t["train"].max() < b.facts.t["val"].min() and b.facts.t["val"].max() < b.facts.t["test"].min()
    assert torch.equal(b.test.x, bundle().test.x)  # the test span does not move
    with pytest.raises(UserError, match="fewer than 2"):
        build_dataset(config.validate({**raw, "data": {"name": "sine_cosine", "points": 8}, "train": {"val_fraction": 0.9}}))
