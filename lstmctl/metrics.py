"""Metrics as pure functions on tensors. Regression metrics are computed in the target's own units."""

from __future__ import annotations

import torch

from lstmctl.data.base import IGNORE_INDEX


def regression(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    p = pred.detach().double().reshape(-1)
    t = target.detach().double().reshape(-1)
    err = p - t
    mse = float((err**2).mean())
    out = {"mse": mse, "rmse": mse**0.5, "mae": float(err.abs().mean())}
    nz = t.abs() > 1e-12  # guard: MAPE is undefined where the target is 0
    out["mape"] = float((err[nz].abs() / t[nz].abs()).mean() * 100) if nz.any() else None
    denom = p.abs() + t.abs()
    ok = denom > 1e-12
    out["smape"] = float((2 * err[ok].abs() / denom[ok]).mean() * 100) if ok.any() else None
    ss_tot = float(((t - t.mean()) ** 2).sum())
    out["r2"] = 1 - float((err**2).sum()) / ss_tot if ss_tot > 0 else None
    return out


def mase(pred: torch.Tensor, target: torch.Tensor, scale: float | None) -> float | None:
    """Mean absolute scaled error: the model's MAE over the naive forecast's MAE on the training series.

    Below 1: better than the naive (last-value) forecast was in-sample. None when the scale is 0 or unknown.
    """
    if scale is None or not scale > 0:
        return None
    err = (pred.detach().double() - target.detach().double()).abs().mean()
    return float(err / scale)


def forecast(pred: torch.Tensor, target: torch.Tensor, naive: torch.Tensor, mase_scale: float | None) -> dict:
    """Regression metrics and MASE for the model, and the same for the naive forecast as `naive_*` keys."""
    out = regression(pred, target)
    out["mase"] = mase(pred, target, mase_scale)
    base = regression(naive, target)
    base["mase"] = mase(naive, target, mase_scale)
    out.update({f"naive_{k}": v for k, v in base.items()})
    if out["mae"] is not None and base["mae"]:
        out["mae_vs_naive"] = out["mae"] / base["mae"]  # < 1: the model beats the last-value forecast
    return out


def stepwise(pred: torch.Tensor, target: torch.Tensor, scale: float | None) -> tuple[dict, list[dict]]:
    """Regression metrics and MASE of each column (forecast step) of (N, H) forecasts, and their average
    over the steps (None where any step's is None)."""
    per = []
    for k in range(pred.shape[-1]):
        m = regression(pred[:, k], target[:, k])
        m["mase"] = mase(pred[:, k], target[:, k], scale)
        per.append(m)
    avg = {key: (None if any(m[key] is None for m in per) else sum(m[key] for m in per) / len(per)) for key in per[0]}
    return avg, per


def horizon_forecast(pred: torch.Tensor, target: torch.Tensor, naive: torch.Tensor, mase_scale: float | None) -> dict:
    """`forecast` for (N, H) multi-step forecasts: every metric the average over the H steps, then the
    steps' own mae/rmse/mase as flat keys mae_h1, rmse_h1, mase_h1, mae_h2, ... (H = 1: exactly `forecast`)."""
    if pred.shape[-1] == 1:
        return forecast(pred, target, naive, mase_scale)
    out, per = stepwise(pred, target, mase_scale)
    base, _ = stepwise(naive, target, mase_scale)
    out.update({f"naive_{k}": v for k, v in base.items()})
    if out["mae"] is not None and base["mae"]:
        out["mae_vs_naive"] = out["mae"] / base["mae"]
    for k, m in enumerate(per, 1):
        out.update({f"mae_h{k}": m["mae"], f"rmse_h{k}": m["rmse"], f"mase_h{k}": m["mase"]})
    return out


def baseline(name: str, forecast_: torch.Tensor, target: torch.Tensor, mase_scale: float | None) -> dict:
    """{name}_mae, {name}_rmse, {name}_mase of a baseline's (N, H) forecasts, averaged over the steps; windows
    where the baseline is undefined (NaN: a seasonal naive before the first season) are left out."""
    keep = ~torch.isnan(forecast_).any(dim=-1)
    if not keep.any():
        return {f"{name}_mae": None, f"{name}_rmse": None, f"{name}_mase": None}
    avg, _ = stepwise(forecast_[keep], target[keep], mase_scale)
    return {f"{name}_mae": avg["mae"], f"{name}_rmse": avg["rmse"], f"{name}_mase": avg["mase"]}


# ---------------------------------------------------------------- quantile forecasts (train.loss: quantile)


def quantile_outputs(out: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Raw outputs (..., O*Q) of a quantile model -> (..., O, Q), each value's Q quantiles in increasing order.

    Order is kept by SORTING the Q raw values, in the loss and wherever outputs are read, rather than by
    predicting a median and softplus increments: sorting needs no anchor level and no change of the model's
    head, its gradient is the pinball gradient routed to whichever output holds each rank, and sorted
    quantile estimates are never further from the truth than unsorted ones (Chernozhukov, Fernandez-Val and
    Galichon 2010, "Quantile and probability curves without crossing": the pinball loss of the rearranged
    forecasts is at most that of the crossing ones)."""
    return torch.sort(out.reshape(*out.shape[:-1], -1, n_levels), dim=-1).values


def pinball(q: torch.Tensor, target: torch.Tensor, levels: list[float]) -> torch.Tensor:
    """Mean pinball (quantile) loss of forecasts q (..., O, Q) at `levels` for targets (..., O):
    max(tau * e, (tau - 1) * e) with e = target - forecast, averaged over every value and level."""
    tau = torch.as_tensor(levels, dtype=q.dtype, device=q.device)
    e = target.to(q.dtype).unsqueeze(-1) - q
    return torch.maximum(tau * e, (tau - 1) * e).mean()


def level_label(level: float) -> str:
    return f"{level * 100:.6g}".replace(".", "p")  # 0.1 -> "10", 0.025 -> "2p5"


def central_intervals(levels: list[float]) -> list[tuple[int, int]]:
    """(lower, upper) level indices of the central intervals: the k-th lowest with the k-th highest level,
    outermost first ([0.1, 0.5, 0.9] -> [(0, 2)]: the 10-90 interval)."""
    return [(k, len(levels) - 1 - k) for k in range(len(levels) // 2)]


def interval_key(kind: str, levels: list[float], lo: int, hi: int) -> str:
    return f"{kind}_{level_label(levels[lo])}_{level_label(levels[hi])}"  # e.g. coverage_10_90, width_10_90


def intervals(q: torch.Tensor, target: torch.Tensor, levels: list[float]) -> dict[str, float]:
    """`pinball` (the mean pinball loss over the levels, in the target's units), and for each central interval
    its `coverage_<lo>_<hi>` (the share of targets inside [lower, upper], both ends included; nominal:
    upper level - lower level) and `width_<lo>_<hi>` (its mean width)."""
    q, t = q.detach().double(), target.detach().double()
    out = {"pinball": float(pinball(q, t, levels))}
    for lo, hi in central_intervals(levels):
        inside = (t >= q[..., lo]) & (t <= q[..., hi])
        out[interval_key("coverage", levels, lo, hi)] = float(inside.double().mean())
        out[interval_key("width", levels, lo, hi)] = float((q[..., hi] - q[..., lo]).mean())
    return out


MAXIMIZED = ("accuracy", "f1", "r2")  # metric names containing one of these: higher is better


def mode_for(name: str) -> str:
    """"max" when higher is better for a metric or column name (accuracy, macro_f1, val_r2), else "min"."""
    return "max" if any(word in name for word in MAXIMIZED) else "min"


def _scored(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true classes as flat vectors, without the IGNORE_INDEX targets."""
    pred, t = pred.reshape(-1), target.reshape(-1).to(pred.device)
    keep = t != IGNORE_INDEX
    return pred[keep], t[keep]


def _headline(pred: torch.Tensor, t: torch.Tensor, num_classes: int) -> tuple[dict, tuple]:
    """accuracy and macro-F1 from class counts (the confusion matrix's diagonal and margins), and the per-class values."""
    tp = torch.bincount(t[pred == t], minlength=num_classes).double()
    n_pred = torch.bincount(pred, minlength=num_classes)  # the confusion matrix's column sums
    n_true = torch.bincount(t, minlength=num_classes)  # its row sums
    precision = tp / n_pred.double().clamp(min=1)
    recall = tp / n_true.double().clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    present = (n_pred + n_true) > 0
    head = {
        "accuracy": float((pred == t).double().mean()) if len(t) else None,
        # over the classes that occur (as target or prediction): an unused class (the copy task's blank) is no 0
        "macro_f1": float(f1[present].mean()) if present.any() else None,
    }
    return head, (precision, recall, f1)


def classification_headline(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    """accuracy and macro_f1 of predicted classes (not logits): training's per-epoch validation metrics.

    The same numbers `classification` reports, without the per-class lists and the confusion matrix."""
    return _headline(*_scored(pred, target), num_classes)[0]


def classification(logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    pred, t = _scored(logits.argmax(-1), target)
    head, (precision, recall, f1) = _headline(pred, t, num_classes)
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    cm.index_put_((t.cpu(), pred.cpu()), torch.ones_like(t.cpu()), accumulate=True)  # rows: true, cols: predicted
    return {
        **head,
        "per_class": {
            "precision": [round(float(v), 6) for v in precision],
            "recall": [round(float(v), 6) for v in recall],
            "f1": [round(float(v), 6) for v in f1],
        },
        "confusion_matrix": cm.tolist(),
    }
