"""Predictions and metrics on a split: training's validation pass, and what eval/plot/predict report.

    predict(model, x, stateful)                 outputs for (N, T, F) inputs, batched, eval mode, no grad
    evaluate_loss(model, split, crit, dev, st)  mean loss over a split (training's validation pass);
                                                outputs=[] also keeps each chunk's outputs for the metrics
    metric_columns(data)                        metrics.csv's columns for a run on this dataset
    validation_metrics(data, outputs)           the val_<metric> cells of an epoch, from that same pass
    score(data, model, split_name, stateful)    the metrics `lstmctl eval` writes to eval.json
    quantile_levels, quantiles_in_units,        a quantile run (train.loss: quantile): its levels, its outputs
    point_outputs                               as (..., O, Q) in the target's units, its median

One code path computes a split's metrics (split_metrics): `eval` takes all of them, training's
validation the headline ones of the task (metric_names) every epoch, so `val_accuracy` in metrics.csv
is the accuracy `eval --split val --checkpoint last` reports for the last epoch.
Stateful runs read a split's chunks one after another, carrying the state, as one series.
"""

from __future__ import annotations

from typing import Any

import torch

from lstmctl import metrics
from lstmctl.data.base import DataBundle, Split

CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
REGRESSION_METRICS = ("mae", "rmse", "r2")  # in the target's own units; the dataset's facts may add more
BASE_COLUMNS = ("epoch", "train_loss", "val_loss")  # then val_<metric>..., then TAIL_COLUMNS
TAIL_COLUMNS = ("lr", "seconds")


def eval_batch(device: torch.device) -> int:
    """Sequences per forward pass when nothing is carried. An accelerator wants big chunks (4096 also
    bounds memory on big splits); on a CPU big chunks fall out of the caches: a Fashion-MNIST
    validation pass (5,000 images, model.conv) takes 0.84 s in chunks of 4096 and 0.39 s in 512, and
    plain LSTMs gain 10-20% too."""
    return 512 if device.type == "cpu" else 4096


def predict(model: torch.nn.Module, x: torch.Tensor, stateful: bool = False) -> torch.Tensor:
    """Model outputs for a (N, T, F) tensor, batched, in eval mode, without gradients (CPU in, CPU out)."""
    model.eval()
    outs = []
    state = None
    step = 1 if stateful else eval_batch(x.device)
    with torch.no_grad():
        for lo in range(0, x.shape[0], step):
            out, new_state = model(x[lo : lo + step], state)
            state = new_state if stateful else None
            outs.append(out)
    return torch.cat(outs) if outs else torch.zeros(0)


def evaluate_loss(model: torch.nn.Module, split: Split, criterion, device: torch.device, stateful: bool,
                  *, outputs: list[torch.Tensor] | None = None) -> float:
    """Mean loss over a split, in eval mode, without gradients; the model is left in train mode.

    The sum stays on the device in float64 (one sync at the end), weighted by batch size so the
    last, shorter batch counts for what it holds. `outputs`, a list, receives each chunk's outputs
    (still on the device: no sync), so the metrics come from this same forward pass.
    """
    model.eval()
    total = torch.zeros((), device=device, dtype=torch.float64)
    n = len(split)
    step = 1 if stateful else eval_batch(device)
    state = None
    with torch.no_grad():
        for lo in range(0, n, step):
            xb = split.x[lo : lo + step]
            yb = split.y[lo : lo + step]
            out, new_state = model(xb, state)
            state = new_state if stateful else None
            total += criterion(out, yb).double() * xb.shape[0]
            if outputs is not None:
                outputs.append(out)
    model.train()
    return float(total / n)


def metric_names(data: DataBundle) -> list[str]:
    """The task's headline metrics, recorded every epoch on the validation split (without the val_ prefix)."""
    if data.task.classification:
        return list(CLASSIFICATION_METRICS)
    return list(REGRESSION_METRICS) + [m for m in data.facts.epoch_metrics if m not in REGRESSION_METRICS]


def metric_columns(data: DataBundle) -> list[str]:
    """metrics.csv's columns for a run on `data`, known before training.

    epoch, train_loss, val_loss, then val_<metric> for each of metric_names (only with a validation
    split: without one they would stay empty), then lr, seconds. val_loss is always there (empty
    without a validation split), as in run directories written before the val_<metric> columns.
    """
    vals = [f"val_{m}" for m in metric_names(data)] if data.val is not None else []
    return [*BASE_COLUMNS, *vals, *TAIL_COLUMNS]


def in_units(data: DataBundle, split_name: str, y: torch.Tensor) -> torch.Tensor:
    """Outputs or targets of a split in the target's own units: the facts' own inverse where they have
    one (Facts.to_units), else the bundle's scaler (DataBundle.inverse_target)."""
    out = data.facts.to_units(split_name, y)
    return data.inverse_target(y) if out is None else out


def quantile_levels(data: DataBundle) -> list[float] | None:
    """The quantile levels of a run trained with train.loss: quantile (open_session records them in the data
    state), else None. Its outputs are then (..., O*Q): Q per output value (metrics.quantile_outputs)."""
    levels = data.state.get("quantiles")
    return [float(q) for q in levels] if levels and not data.task.classification else None


def quantiles_in_units(data: DataBundle, split_name: str, out: torch.Tensor) -> torch.Tensor:
    """A quantile run's outputs (..., O*Q) as (..., O, Q) in the target's own units, levels in increasing order:
    each level goes through the same inverse as a point forecast (in_units; monotone, so the order holds)."""
    levels = quantile_levels(data) or [0.5]
    q = metrics.quantile_outputs(out, len(levels))
    return torch.stack([in_units(data, split_name, q[..., k]) for k in range(len(levels))], dim=-1)


def point_outputs(data: DataBundle, out: torch.Tensor) -> torch.Tensor:
    """The point forecast in the model's units: a quantile run's median (0.5, always among its levels);
    other runs' outputs unchanged."""
    levels = quantile_levels(data)
    return out if levels is None else metrics.quantile_outputs(out, len(levels))[..., levels.index(0.5)]


def split_metrics(data: DataBundle, split_name: str, out: torch.Tensor, *, full: bool = True) -> dict[str, Any]:
    """Metrics of the outputs `out` (CPU) for the split `split_name`: everything (`full`, for eval) or
    only metric_names (each epoch's validation: no per-class lists, no confusion matrix).

    Classification from the logits; regression in the target's own units, plus what the dataset's
    facts add (a forecast's MASE and naive baseline, inline's predictions).
    """
    target = data.split(split_name).y
    if data.task.classification:
        if full:
            return metrics.classification(out, target, data.output_size)
        return metrics.classification_headline(out.argmax(-1), target, data.output_size)
    levels = quantile_levels(data)  # a quantile run: the point metrics score the median
    bands = quantiles_in_units(data, split_name, out) if levels else None
    pred = bands[..., levels.index(0.5)] if levels else in_units(data, split_name, out)
    target = in_units(data, split_name, target)
    result = metrics.regression(pred, target)
    if full or data.facts.epoch_metrics:
        result.update(data.facts.extra_metrics(split_name, pred, target))
    if levels and full:
        result.update(metrics.intervals(bands, target.reshape(bands.shape[:-1]), levels))
    return result if full else {k: result.get(k) for k in metric_names(data)}


def validation_metrics(data: DataBundle, outputs: list[torch.Tensor]) -> dict[str, float | None]:
    """The epoch's val_<metric> values from the validation pass's chunk outputs (evaluate_loss(outputs=...)).

    The outputs go to the host once, all together (one sync per epoch, none per chunk); a metric
    undefined on the split (r2 of a constant target) is None, an empty cell.
    """
    values = split_metrics(data, "val", torch.cat(outputs).cpu(), full=False)
    return {f"val_{k}": values.get(k) for k in metric_names(data)}


def score(data: DataBundle, model: torch.nn.Module, split_name: str, stateful: bool) -> dict[str, Any]:
    """The split's metrics, as `lstmctl eval` writes them to eval.json."""
    split = data.split(split_name)
    return split_metrics(data, split_name, predict(model, split.x, stateful))
