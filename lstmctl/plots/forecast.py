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


MAX_PANELS = 6  # series drawn by the forecast figure of a long table; the rest are named in its title
COLORS = {"train": "tab:blue", "val": "tab:purple", "test": "tab:red"}
SHADE = {"val": "#ece2f4", "test": "#fbe0de"}


def plot_many(facts, preds: dict[str, np.ndarray], path: Path, what: str) -> Path:
    """The forecast figure of a long table (data.series_column): one panel per series for the first MAX_PANELS,
    each with its actual values, its validation and test blocks shaded, the model's step-1 forecasts per
    split and the naive forecast on val/test. `preds`: per split, the model's (N, H) forecasts in the
    target's units, windows in the order of facts.member; the series not drawn are named in the title."""
    members = facts.members
    shown, rest = members[:MAX_PANELS], members[MAX_PANELS:]
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 2.3 * len(shown) + 0.8), squeeze=False)
    for j, (ax, m) in enumerate(zip(axes[:, 0], shown)):
        n = len(m.series)
        ax.axvspan(m.val_start - 0.5, m.test_start - 0.5, color=SHADE["val"], alpha=0.7, lw=0)
        ax.axvspan(m.test_start - 0.5, n - 0.5, color=SHADE["test"], alpha=0.7, lw=0)
        ax.plot(np.arange(n), m.series, color="k", lw=1.1, label="actual")
        for name, pred in preds.items():
            sel = np.asarray(facts.member[name]) == j
            if not sel.any():
                continue
            pos = np.asarray(facts.rows[name])[sel]
            order = np.argsort(pos)
            ax.plot(pos[order], pred[sel][order, 0], color=COLORS[name], lw=1.4, label=f"predicted ({name})")
            if name != "train" and name in facts.naive:
                naive = np.asarray(facts.naive[name]).reshape(len(sel), -1)[sel][:, 0]
                ax.plot(pos[order], naive[order], color="0.45", lw=1, ls=":", label="naive" if name == "test" else None)
        if m.dates:
            ticks = np.unique(np.linspace(0, n - 1, 7).astype(int))
            ax.set_xticks(ticks, [str(m.dates[t]) for t in ticks], fontsize=7)
        ax.set_ylabel(f"{m.name}", fontsize=8)
        ax.grid(True, alpha=0.3)
        if j == 0:
            ax.legend(fontsize=7, ncols=5, loc="best")
    axes[-1, 0].set_xlabel(facts.date_column or "row of the series")
    named = ", ".join(r.name for r in rest[:12]) + (", …" if len(rest) > 12 else "")
    head = f"{what}; {len(members)} series" + (f", not drawn: {named}" if rest else "")
    axes[0, 0].set_title(head, fontsize=9)
    return save(fig, path)
