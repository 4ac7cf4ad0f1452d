"""Figures of a run's record (metrics.csv), for any dataset: the loss curve (with a validation metric
beside it when one is recorded), the comparison of runs, and of groups of runs (mean curves with a band)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmctl.errors import UserError
from lstmctl.plots.common import FORMATS, plt, save
from lstmctl.runs import RunDir


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r.get(key) if isinstance(r.get(key), (int, float)) else np.nan for r in rows], dtype=float)


def metric_panel_column(rows: list[dict], monitor: str | None) -> str | None:
    """The validation metric loss.png draws beside the loss: the monitored one when it is a val_* metric
    other than val_loss, else the first such column that holds a value; None when there is none."""
    columns = [k for k in (rows[0] if rows else {}) if k.startswith("val_") and k != "val_loss"]
    columns = [k for k in columns if np.isfinite(_column(rows, k)).any()]
    if monitor in columns:
        return monitor
    return columns[0] if columns else None


def _best(run: RunDir) -> dict:
    try:
        best = run.info().get("best")
    except (UserError, AttributeError):
        return {}
    return best if isinstance(best, dict) else {}


def plot_loss(run: RunDir, out_dir: Path, fmt: str = "png") -> Path:
    """Train and validation loss per epoch (log scale), with the learning rate when it was scheduled; and,
    when metrics.csv has validation metrics besides the loss, a second panel with one of them."""
    rows = run.read_metrics()
    if not rows:
        raise UserError(f"run {run.id} has no metrics yet (metrics.csv is empty); nothing to plot")
    best = _best(run)
    metric = metric_panel_column(rows, best.get("monitor"))
    epochs = np.array([r["epoch"] for r in rows], dtype=float)
    if metric is None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    else:
        fig, (ax, axm) = plt.subplots(1, 2, figsize=(13, 4.5))
    train = _column(rows, "train_loss")
    ax.plot(epochs, train, label="train loss", color="tab:blue")
    val = _column(rows, "val_loss")
    if np.isfinite(val).any():
        ok = np.isfinite(val)  # val_every > 1 leaves epochs without a value: join the ones that have one
        ax.plot(epochs[ok], val[ok], label="validation loss", color="tab:orange", marker="." if ok.sum() < 30 else None)
    finite = np.concatenate([train, val])
    if np.isfinite(finite).any() and np.nanmin(finite) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)" if ax.get_yscale() == "log" else "loss")
    ax.grid(True, which="both", alpha=0.3)
    lrs = _column(rows, "lr")
    handles, labels = ax.get_legend_handles_labels()
    if np.isfinite(lrs).any() and np.nanmax(lrs) != np.nanmin(lrs):  # scheduled: show it
        ax2 = ax.twinx()
        ax2.plot(epochs, lrs, color="tab:green", alpha=0.6, linestyle="--", label="learning rate")
        ax2.set_ylabel("learning rate")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right")
    ax.set_title(f"{run.id}: loss per epoch")
    if metric is not None:
        values = _column(rows, metric)
        ok = np.isfinite(values)
        axm.plot(epochs[ok], values[ok], color="tab:purple", marker="." if ok.sum() < 30 else None, label=f"validation {metric[4:]}")
        if best.get("monitor") == metric and best.get("epoch"):
            axm.axvline(best["epoch"], color="gray", ls=":", label=f"best epoch {best['epoch']}")
        axm.set_xlabel("epoch")
        axm.set_ylabel(metric)
        axm.grid(True, alpha=0.3)
        axm.legend(loc="best")
        monitored = " (monitored)" if best.get("monitor") == metric else ""
        axm.set_title(f"{metric}{monitored} per epoch")
    return save(fig, out_dir / f"loss.{fmt}")


def plot_compare(runs: list[RunDir], out: Path, fmt: str = "png") -> Path:
    """Loss curves of several runs on one log-scale axis: train solid, validation dashed."""
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    positive = True
    for i, run in enumerate(runs):
        rows = run.read_metrics()
        if not rows:
            continue
        c = colors[i % len(colors)]
        try:
            name = f"{run.id} ({run.info().get('model')})"
        except UserError:
            name = run.id
        ep = [r["epoch"] for r in rows]
        tr = [r["train_loss"] if r["train_loss"] is not None else np.nan for r in rows]
        ax.plot(ep, tr, color=c, label=f"{name} train")
        va = [r.get("val_loss") if r.get("val_loss") is not None else np.nan for r in rows]
        if np.isfinite(va).any():
            ax.plot(ep, va, color=c, ls="--", label=f"{name} validation")
        positive = positive and np.nanmin(tr) > 0
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" + (" (log scale)" if positive else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"loss curves of {len(runs)} runs")
    return save(fig, _out_path(out, fmt))


def _mean_std(runs: list[RunDir], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and std (ddof=1; 0 for one run) of a metrics.csv column over the runs that have a value there."""
    series = [{r["epoch"]: r.get(key) for r in run.read_metrics() if isinstance(r.get(key), (int, float))} for run in runs]
    epochs = sorted(set().union(*series)) if series else []
    mean, std = [], []
    for e in epochs:
        v = np.array([s[e] for s in series if e in s and np.isfinite(s[e])], dtype=float)
        mean.append(v.mean() if v.size else np.nan)
        std.append(v.std(ddof=1) if v.size > 1 else 0.0)
    return np.array(epochs, dtype=float), np.array(mean), np.array(std)


def plot_compare_groups(groups: list[tuple[str, list[RunDir]]], out: Path, fmt: str = "png") -> Path:
    """Groups of runs (seeds): per group the mean loss curve over its runs with a band of +-1 std, train
    solid, validation dashed; a second panel does the same for a validation metric all groups record."""
    columns = [set(k for run in runs for row in run.read_metrics()[:1] for k in row) for _, runs in groups]
    shared = set.intersection(*columns) if columns else set()
    monitor = _best(groups[0][1][0]).get("monitor") if groups and groups[0][1] else None
    metric = monitor if monitor in shared and monitor != "val_loss" and monitor.startswith("val_") else \
        next((k for k in sorted(shared) if k.startswith("val_") and k != "val_loss"), None)
    if metric is None:
        fig, ax = plt.subplots(figsize=(9, 5))
    else:
        fig, (ax, axm) = plt.subplots(1, 2, figsize=(14, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    positive = True
    for i, (label, runs) in enumerate(groups):
        c = colors[i % len(colors)]
        for key, ls, what in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
            ep, mean, std = _mean_std(runs, key)
            if not np.isfinite(mean).any():
                continue
            ax.plot(ep, mean, color=c, ls=ls, label=f"{label} {what} (mean of {len(runs)})")
            ax.fill_between(ep, mean - std, mean + std, color=c, alpha=0.15, linewidth=0)
            positive = positive and np.nanmin(mean - std) > 0
        if metric is not None:
            ep, mean, std = _mean_std(runs, metric)
            if np.isfinite(mean).any():
                axm.plot(ep, mean, color=c, label=f"{label} (mean of {len(runs)})")
                axm.fill_between(ep, mean - std, mean + std, color=c, alpha=0.15, linewidth=0)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" + (" (log scale)" if positive else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"mean loss ± 1 std over seeds, {len(groups)} groups")
    if metric is not None:
        axm.set_xlabel("epoch")
        axm.set_ylabel(metric)
        axm.grid(True, alpha=0.3)
        axm.legend(fontsize=8)
        axm.set_title(f"mean {metric} ± 1 std over seeds")
    return save(fig, _out_path(out, fmt))


def _out_path(out: Path, fmt: str) -> Path:
    out = Path(out)
    if out.suffix.lstrip(".") not in FORMATS:
        out = out.with_suffix(f".{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out
