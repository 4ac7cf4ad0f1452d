"""model.pool: what a per-sequence head reads (the final state, or the mean or max over the steps),
for every family; inspection recomputes the prediction through the same pooling."""

from __future__ import annotations

import pytest
import torch

from lstmctl import config  # noqa: F401  (importing it registers the built-in families)
from lstmctl.data.base import Task
from lstmctl.inspection import trace
from lstmctl.registry import MODELS

FAMILIES = ["lstm", "lstm_cell", "bilstm", "gru", "rnn", "stacked_lstm"]


def build(name, pool, task=Task.CLASSIFICATION):
    entry = MODELS.get(name)
    torch.manual_seed(0)
    return entry.builder(entry.params.model_validate({"hidden_size": 5, "num_layers": 2, "pool": pool}), 3, 4, task)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("pool", ["mean", "max"])
def test_pooled_head_reads_every_step(name, pool):
    model = build(name, pool).eval()
    x = torch.randn(6, 9, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred, _ = model(x)
        out, _ = model.backbone(x)
        pooled = out.mean(dim=1) if pool == "mean" else out.amax(dim=1)
        assert torch.allclose(pred, model.head(pooled), atol=1e-6)
        assert not torch.allclose(pred, model.head(out[:, -1]), atol=1e-4)  # not the final state
    # inspection recomputes the prediction from the weights through the same pooling
    assert torch.allclose(trace(model, x).prediction, pred, atol=1e-5)


def test_pool_leaves_per_step_tasks_alone():
    last, pooled = build("lstm", "last", Task.REGRESSION_STEP), build("lstm", "max", Task.REGRESSION_STEP)
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        assert torch.equal(last(x)[0], pooled(x)[0])  # same seed, same weights: the head reads every step
