"""One function per figure. Each reads a run (and, for predictions, its best model) and writes a file.

matplotlib runs on the Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lstmctl.errors import UserError  # noqa: E402
from lstmctl.runs import RunDir  # noqa: E402

FORMATS = ("png", "svg", "pdf")

# meta["kind"] of a DataBundle -> function(loaded, out_dir, fmt) -> list of written paths
PREDICTION_PLOTS: dict[str, Callable] = {}


def prediction_plot(kind: str):
    def deco(fn):
        PREDICTION_PLOTS[kind] = fn
        return fn

    return deco


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss(run: RunDir, out_dir: Path, fmt: str = "png") -> Path:
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
    return _save(fig, out_dir / f"loss.{fmt}")


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
    return _save(fig, out)


@prediction_plot("curve")
def plot_curve(loaded, out_dir: Path, fmt: str = "png") -> list[Path]:
    """The tutorial's figure: input, reference and prediction over t, with the train/test boundary."""
    from lstmctl.inference import predict

    b = loaded.bundle
    fig, ax = plt.subplots(figsize=(10, 4.5))
    first = True
    boundary = None
    for name, color in (("train", "tab:blue"), ("val", "tab:purple"), ("test", "tab:red")):
        split = getattr(b, name)
        t = b.meta["t"].get(name)
        if split is None or t is None:
            continue
        pred = b.inverse_target(predict(loaded.model, split.x, loaded.cfg.train.stateful))
        tt = t.reshape(-1).numpy()
        order = np.argsort(tt)
        ax.plot(tt[order], split.x[..., 0].reshape(-1).numpy()[order], color="0.6", lw=1, label="input " + b.meta["input_label"] if first else None)
        ax.plot(tt[order], b.inverse_target(split.y)[..., 0].reshape(-1).numpy()[order], color="k", lw=1.5, ls="--", label="reference " + b.meta["target_label"] if first else None)
        ax.plot(tt[order], pred[..., 0].reshape(-1).numpy()[order], color=color, lw=2, alpha=0.8, label=f"prediction ({name})")
        first = False
        if name == "test":
            boundary = float(tt.min())
    if boundary is not None:
        ax.axvline(boundary, color="k", lw=1, alpha=0.5)
        ax.annotate(" test →", (boundary, ax.get_ylim()[1]), va="top", fontsize=9)
    ax.set_xlabel("t")
    ax.set_ylabel("value")
    ax.legend(loc="lower left", fontsize=8, ncols=2)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{loaded.run.id}: predictions ({loaded.checkpoint} checkpoint, epoch {loaded.epoch})")
    return [_save(fig, out_dir / f"predictions.{fmt}")]


def plot_run(run: RunDir, fmt: str = "png", checkpoint: str = "best") -> list[Path]:
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    import lstmctl.plots_tasks  # noqa: F401  (registers the per-task figures)
    from lstmctl.inference import open_run

    out_dir = run.plots
    out_dir.mkdir(exist_ok=True)
    paths = [plot_loss(run, out_dir, fmt)]
    if run.checkpoint(checkpoint).exists():
        loaded = open_run(run, checkpoint)
        plotter = PREDICTION_PLOTS.get(loaded.bundle.meta.get("kind", ""))
        if plotter is not None:
            with torch.no_grad():
                paths += plotter(loaded, out_dir, fmt)
    return paths
