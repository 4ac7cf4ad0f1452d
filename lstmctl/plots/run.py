"""Figures of a run's record (metrics.csv), for any dataset: the loss curve and the comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmctl.errors import UserError
from lstmctl.plots.common import FORMATS, plt, save
from lstmctl.runs import RunDir


def plot_loss(run: RunDir, out_dir: Path, fmt: str = "png") -> Path:
    """Train and validation loss per epoch (log scale), with the learning rate when it was scheduled."""
    rows = run.read_metrics()
    if not rows:
        raise UserError(f"run {run.id} has no metrics yet (metrics.csv is empty); nothing to plot")
    epochs = np.array([r["epoch"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    train = np.array([r["train_loss"] if r["train_loss"] is not None else np.nan for r in rows], dtype=float)
    ax.plot(epochs, train, label="train loss", color="tab:blue")
    val = np.array([r.get("val_loss") if r.get("val_loss") is not None else np.nan for r in rows], dtype=float)
    if np.isfinite(val).any():
        ax.plot(epochs, val, label="validation loss", color="tab:orange")
    if np.nanmin(np.concatenate([train, val])) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    lrs = np.array([r.get("lr") if r.get("lr") is not None else np.nan for r in rows], dtype=float)
    handles, labels = ax.get_legend_handles_labels()
    if np.isfinite(lrs).any() and np.nanmax(lrs) != np.nanmin(lrs):  # scheduled: show it
        ax2 = ax.twinx()
        ax2.plot(epochs, lrs, color="tab:green", alpha=0.6, linestyle="--", label="learning rate")
        ax2.set_ylabel("learning rate")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right")
    ax.set_title(f"{run.id}: loss per epoch")
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
    out = Path(out)
    if out.suffix.lstrip(".") not in FORMATS:
        out = out.with_suffix(f".{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, out)
