"""Predictions and metrics on a split: training's validation loss, and what eval/plot/predict report.

    predict(model, x, stateful)                 outputs for (N, T, F) inputs, batched, eval mode, no grad
    evaluate_loss(model, split, crit, dev, st)  mean loss over a split (training's validation pass)
    score(data, model, split_name, stateful)    the metrics `lstmctl eval` writes to eval.json

Stateful runs read a split's chunks one after another, carrying the state, as one series.
"""

from __future__ import annotations

from typing import Any

import torch

from lstmctl import metrics
from lstmctl.data.base import DataBundle, Split

EVAL_BATCH = 4096  # sequences per forward pass when nothing is carried: bounds memory on big splits


def predict(model: torch.nn.Module, x: torch.Tensor, stateful: bool = False) -> torch.Tensor:
    """Model outputs for a (N, T, F) tensor, batched, in eval mode, without gradients (CPU in, CPU out)."""
    model.eval()
    outs = []
    state = None
    step = 1 if stateful else EVAL_BATCH
    with torch.no_grad():
        for lo in range(0, x.shape[0], step):
            out, new_state = model(x[lo : lo + step], state)
            state = new_state if stateful else None
            outs.append(out)
    return torch.cat(outs) if outs else torch.zeros(0)


def evaluate_loss(model: torch.nn.Module, split: Split, criterion, device: torch.device, stateful: bool) -> float:
    """Mean loss over a split, in eval mode, without gradients; the model is left in train mode.

    The sum stays on the device in float64 (one sync at the end), weighted by batch size so the
    last, shorter batch counts for what it holds.
    """
    model.eval()
    total = torch.zeros((), device=device, dtype=torch.float64)
    n = len(split)
    step = 1 if stateful else EVAL_BATCH
    state = None
    with torch.no_grad():
        for lo in range(0, n, step):
            xb = split.x[lo : lo + step]
            yb = split.y[lo : lo + step]
            out, new_state = model(xb, state)
            state = new_state if stateful else None
            total += criterion(out, yb).double() * xb.shape[0]
    model.train()
    return float(total / n)


def score(data: DataBundle, model: torch.nn.Module, split_name: str, stateful: bool) -> dict[str, Any]:
    """The split's metrics: classification from the logits; regression in the target's own units,
    plus whatever the dataset's facts add (a forecast's MASE and naive baseline, inline's predictions)."""
    split = data.split(split_name)
    out = predict(model, split.x, stateful)
    if data.task.classification:
        return metrics.classification(out, split.y, data.output_size)
    pred, target = data.inverse_target(out), data.inverse_target(split.y)
    result = metrics.regression(pred, target)
    result.update(data.facts.extra_metrics(split_name, pred, target))
    return result
