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
