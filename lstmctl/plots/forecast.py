"""The figure of `lstmctl backtest`: each fold's test error beside the baselines' from the same origins."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmctl.plots.common import plt, save

# metric prefix -> (colour, line style, label); "" is the model
SERIES = {"": ("tab:red", "-", "model"), "naive_": ("0.45", ":", "naive"), "snaive_": ("tab:olive", "-.", "seasonal naive"),
          "drift_": ("tab:brown", "--", "drift")}


def plot_backtest(folds: list[dict], labels: list[str], path: Path, what: str) -> Path:
    """MAE (and MASE, when known) of every fold for the model and each baseline, one point per origin,
    with the model's mean over the folds as a dashed line. `folds`: each fold's metrics; `labels`: where
    each fold's test block starts (its first target's date or row)."""
    panels = [m for m in ("mae", "mase") if any(isinstance(f.get(m), (int, float)) for f in folds)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 1.1 * len(folds) + 3), 2.9 * len(panels)), squeeze=False)
    x = np.arange(1, len(folds) + 1)
    for ax, metric in zip(axes[:, 0], panels):
        for prefix, (color, ls, label) in SERIES.items():
            values = [f.get(prefix + metric) for f in folds]
            if not any(isinstance(v, (int, float)) for v in values):
                continue
            y = np.array([v if isinstance(v, (int, float)) else np.nan for v in values], dtype=float)
            ax.plot(x, y, color=color, ls=ls, marker="o", ms=4, lw=2 if not prefix else 1.2, label=label)
            if not prefix:
                ax.axhline(np.nanmean(y), color=color, lw=0.8, ls="--", alpha=0.6, label=f"model mean {np.nanmean(y):.4g}")
        if metric == "mase":
            ax.axhline(1.0, color="k", lw=0.6, alpha=0.4)
        ax.set_ylabel(f"test {metric}")
        ax.set_xticks(x, [f"{k}\n{lab}" for k, lab in zip(x, labels)], fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncols=3)
    axes[-1, 0].set_xlabel("fold (first forecast target)")
    axes[0, 0].set_title(what, fontsize=9)
    return save(fig, path)
