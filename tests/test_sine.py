import math

import torch

from lstmctl import config
from lstmctl.data.base import Task
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
