"""Per-task figures: what a trained model does on its dataset, drawn from the dataset's typed facts.

The figure is chosen by the TYPE of `DataBundle.facts` (FIGURES below, looked up along the type's
MRO), never by a string: a function registered for SeriesFacts only ever receives SeriesFacts, so
every field it reads exists, and facts of a kind without a figure (the base Facts, InlineFacts)
give no per-task figure rather than a broken one. A new figure: write
`def plot_x(opened, facts: XFacts, out_dir, fmt) -> list[Path]` and add `XFacts: plot_x` to FIGURES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lstmctl.data.base import IGNORE_INDEX, Facts, Split
from lstmctl.data.facts import AddingFacts, CopyFacts, CurveFacts, ImageFacts, SeriesFacts
from lstmctl.metrics import central_intervals
from lstmctl.evaluation import in_units, point_outputs, predict, quantile_levels, quantiles_in_units
from lstmctl.plots.common import plt, save, title
from lstmctl.plots.forecast import plot_many
from lstmctl.session import OpenedRun

# (opened run, its facts, output folder, format) -> the files written; the facts parameter is
# annotated with the exact type the function is registered for (a test checks this)
Figure = Callable[..., list[Path]]


def _outputs(opened: OpenedRun, split: Split) -> torch.Tensor:
    """The model's point outputs (a quantile run's median) in its own units."""
    return point_outputs(opened.data, _raw(opened, split))


def _raw(opened: OpenedRun, split: Split) -> torch.Tensor:
    return predict(opened.model, split.x, opened.cfg.train.stateful)


# ---------------------------------------------------------------- curve (sine_cosine)


def plot_curve(opened: OpenedRun, facts: CurveFacts, out_dir: Path, fmt: str) -> list[Path]:
    """The tutorial's figure: input, reference and prediction over t, with the train/test boundary."""
    b = opened.data
    fig, ax = plt.subplots(figsize=(10, 4.5))
    first = True
    boundary = None
    for name, color in (("train", "tab:blue"), ("val", "tab:purple"), ("test", "tab:red")):
        split = getattr(b, name)
        t = facts.t.get(name)
        if split is None or t is None:
            continue
        pred = b.inverse_target(_outputs(opened, split))
        tt = t.reshape(-1).numpy()
        order = np.argsort(tt)
        ax.plot(tt[order], split.x[..., 0].reshape(-1).numpy()[order], color="0.6", lw=1,
                label="input " + facts.input_label if first else None)
        ax.plot(tt[order], b.inverse_target(split.y)[..., 0].reshape(-1).numpy()[order], color="k", lw=1.5, ls="--",
                label="reference " + facts.target_label if first else None)
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
    ax.set_title(title(opened, "predictions"))
    return [save(fig, out_dir / f"predictions.{fmt}")]


# ---------------------------------------------------------------- images (mnist, fashion_mnist)


def _confusion(opened: OpenedRun, cm: np.ndarray, names: list[str], out_dir: Path, fmt: str) -> Path:
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title(title(opened, "confusion matrix, test split, row-normalised"), fontsize=9)
    return save(fig, out_dir / f"confusion.{fmt}")


def _per_class(opened: OpenedRun, cm: np.ndarray, names: list[str], out_dir: Path, fmt: str) -> Path:
    acc = np.diag(cm) / np.clip(cm.sum(1), 1, None)
    overall = np.trace(cm) / max(cm.sum(), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 4))
    bars = ax.bar(range(len(names)), acc, color="tab:blue", label="accuracy per class")
    ax.axhline(overall, color="tab:red", ls="--", label=f"overall {overall:.3f}")
    ax.axhline(1 / len(names), color="0.5", ls=":", label=f"chance {1 / len(names):.2f}")
    for b, a in zip(bars, acc):
        ax.text(b.get_x() + b.get_width() / 2, a + 0.01, f"{a:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("true class")
    ax.set_ylabel("accuracy (recall)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title(opened, "accuracy per class, test split"), fontsize=9)
    return save(fig, out_dir / f"per_class.{fmt}")


def plot_images(opened: OpenedRun, facts: ImageFacts, out_dir: Path, fmt: str) -> list[Path]:
    """Confusion matrix, accuracy per class, and a grid of test images with predicted/true labels."""
    b = opened.data
    test = b.test
    logits = _outputs(opened, test)
    pred = logits.argmax(-1).numpy()
    true = test.y.numpy()
    names = facts.class_names or [str(i) for i in range(b.output_size)]
    n = len(names)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    paths = [_confusion(opened, cm, names, out_dir, fmt), _per_class(opened, cm, names, out_dir, fmt)]

    shape = facts.image_shape or list(test.x.shape[1:])
    wrong = np.nonzero(pred != true)[0][:8]  # show some mistakes beside the first images
    show = list(dict.fromkeys([*range(min(16, len(true))), *wrong.tolist()]))[:24]
    cols = 6
    rows = int(np.ceil(len(show) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), show):
        img = (test.x[i].numpy() * facts.pixel_scale + facts.pixel_offset).reshape(shape)
        ax.imshow(img, cmap="gray_r")
        ok = pred[i] == true[i]
        ax.set_title(f"pred {names[pred[i]]}\ntrue {names[true[i]]}", fontsize=7, color="black" if ok else "tab:red")
        if not ok:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_edgecolor("tab:red")
                s.set_linewidth(2)
    fig.suptitle(title(opened, "test images, mistakes framed in red"), fontsize=9)
    paths.append(save(fig, out_dir / f"samples.{fmt}"))
    return paths


# ---------------------------------------------------------------- memory tasks (adding, copy)


def _memory_file(opened: OpenedRun, fig, ax, what: str, out_dir: Path, fmt: str) -> list[Path]:
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title(opened, what), fontsize=9)
    return [save(fig, out_dir / f"memory.{fmt}")]


def plot_adding(opened: OpenedRun, facts: AddingFacts, out_dir: Path, fmt: str) -> list[Path]:
    """The adding problem: test error against the distance the model must remember."""
    b = opened.data
    test = b.test
    out = _outputs(opened, test)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    err = (b.inverse_target(out) - b.inverse_target(test.y)).reshape(-1).numpy()
    markers = test.x[..., facts.marker_channel].numpy()  # positions of the two marked values
    pos = np.array([np.nonzero(m > 0.5)[0] for m in markers], dtype=object)
    length = facts.length
    # how long the first marked value must be held: from its step to the end of the sequence
    held = np.array([length - p.min() if len(p) else np.nan for p in pos], dtype=float)
    bins = np.linspace(0, length, 11)
    idx = np.clip(np.digitize(held, bins) - 1, 0, len(bins) - 2)
    mse = [float(np.mean(err[idx == k] ** 2)) if (idx == k).any() else np.nan for k in range(len(bins) - 1)]
    centers = (bins[:-1] + bins[1:]) / 2
    ax.plot(centers, mse, marker="o", label="model")
    if facts.baseline_mse:
        ax.axhline(facts.baseline_mse, color="tab:red", ls="--",
                   label=f"{facts.baseline_predictor} (MSE {facts.baseline_mse:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("steps the first marked value must be remembered")
    ax.set_ylabel("test MSE (log scale)")
    return _memory_file(opened, fig, ax, f"adding problem (length {length}): error by memory span", out_dir, fmt)


def plot_copy(opened: OpenedRun, facts: CopyFacts, out_dir: Path, fmt: str) -> list[Path]:
    """The copy task: test accuracy per position of the recalled sequence."""
    test = opened.data.test
    out = _outputs(opened, test)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    pred = out.argmax(-1)
    y = test.y
    start = facts.recall_start
    steps = np.arange(start, y.shape[1])
    acc = []
    for t in steps:
        keep = y[:, t] != IGNORE_INDEX
        acc.append(float((pred[:, t][keep] == y[:, t][keep]).float().mean()) if keep.any() else np.nan)
    ax.plot(steps - start + 1, acc, marker="o", label="model")
    if facts.chance_accuracy:
        ax.axhline(facts.chance_accuracy, color="0.5", ls=":", label=f"chance {facts.chance_accuracy:.2f}")
    ax.set_xlabel("position in the recalled sequence")
    ax.set_ylabel("accuracy on the test split")
    ax.set_ylim(0, 1.05)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    return _memory_file(opened, fig, ax, "copy task: accuracy by recalled position", out_dir, fmt)


# ---------------------------------------------------------------- series (tabular)


BASELINE_STYLE = {"naive": ("0.45", ":", "naive last value"), "snaive": ("tab:olive", "-.", "seasonal naive"),
                  "drift": ("tab:brown", "--", "drift")}


def _series_outputs(opened: OpenedRun, facts: SeriesFacts, name: str, split: Split):
    """(actual, predicted), each (N, H), in the target's own units; and a quantile run's (N, H, Q) band, else None."""
    b = opened.data
    raw = _raw(opened, split)
    actual, pred = in_units(b, name, split.y), in_units(b, name, point_outputs(b, raw))
    band = quantiles_in_units(b, name, raw).numpy() if quantile_levels(b) else None
    return actual.reshape(len(split), -1).numpy(), pred.reshape(len(split), -1).numpy(), band


def _band(ax, levels: list[float], pos: np.ndarray, band: np.ndarray, color: str, label: bool) -> None:
    """A quantile run's central intervals at step 1, outermost palest."""
    for k, (lo, hi) in enumerate(central_intervals(levels)):
        ax.fill_between(pos, band[:, 0, lo], band[:, 0, hi], color=color, alpha=0.15 + 0.1 * k, lw=0,
                        label=f"{levels[lo] * 100:g}–{levels[hi] * 100:g}% interval" if label else None)


def _paths(ax, facts: SeriesFacts, pos: np.ndarray, pred: np.ndarray, color: str, first: bool) -> None:
    """H-step forecast paths from a few origins spread over the split: the origin's value, then its H steps."""
    steps = np.asarray(facts.steps)
    for j, i in enumerate(np.unique(np.linspace(0, len(pos) - 1, 6).astype(int))):
        origin = int(pos[i]) - int(steps[0])
        xs = np.concatenate([[origin], origin + steps])
        ax.plot(xs, np.concatenate([[facts.series[origin]], pred[i]]), color=color, lw=1.4, marker=".", ms=4,
                alpha=0.9, label=f"{len(steps)}-step paths" if first and j == 0 else None)


def plot_series(opened: OpenedRun, facts: SeriesFacts, out_dir: Path, fmt: str) -> list[Path]:
    """Forecasts: actual vs predicted over the date axis, splits shaded, the baselines (naive, seasonal
    naive, drift) on val/test; with H > 1 steps the step-1 forecasts and H-step paths from several origins;
    a quantile run's median with its intervals shaded (step 1, val/test); a residual histogram (step 1)."""
    b = opened.data
    if facts.members:  # a long table: one panel per series
        preds = {name: _series_outputs(opened, facts, name, split)[1] for name in ("train", "val", "test")
                 if (split := getattr(b, name)) is not None and len(split)}
        what = f"{facts.target}: {'step-1 ' if len(facts.steps) > 1 else ''}forecasts per series, val/test shaded"
        return [plot_many(facts, preds, out_dir / f"forecast.{fmt}", title(opened, what))]
    rows = facts.rows  # per split: the row of each window's first target (the x position)
    dates = facts.dates  # per row, with date_column
    dated = bool(dates) and any(d is not None for d in dates)
    target = facts.target
    multi = len(facts.steps) > 1
    fig, ax = plt.subplots(figsize=(11, 4.8))
    colors = {"train": "tab:blue", "val": "tab:purple", "test": "tab:red"}
    shade = {"train": "#dbe9f6", "val": "#ece2f4", "test": "#fbe0de"}
    residuals = {}
    first, labelled = True, set()
    for name in ("train", "val", "test"):
        split = getattr(b, name)
        if split is None or len(split) == 0:
            continue
        pos = np.asarray(rows.get(name, np.arange(len(split))), dtype=float)
        order = np.argsort(pos)  # training windows may be stored shuffled
        actual, pred, band = _series_outputs(opened, facts, name, split)
        if band is not None and name != "train":
            _band(ax, quantile_levels(b), pos[order], band[order], colors[name], True)
        residuals[name] = pred[:, 0] - actual[:, 0]
        ax.axvspan(pos.min() - 0.5, pos.max() + 0.5, color=shade[name], alpha=0.7, lw=0)
        ax.plot(pos[order], actual[order, 0], color="k", lw=1.2, label="actual" if first else None)
        for base, (color, ls, label) in BASELINE_STYLE.items():
            forecast = facts.baselines.get(base, {}).get(name) if base != "naive" else facts.naive.get(name)
            if forecast is None or (base != "naive" and name == "train"):
                continue
            fv = np.asarray(forecast).reshape(len(split), -1)[:, 0]
            ax.plot(pos[order], fv[order], color=color, lw=1, ls=ls,
                    label=None if base in labelled else label + (" (step 1)" if multi else ""))
            labelled.add(base)
        step1 = " step 1" if multi else ""
        ax.plot(pos[order], pred[order, 0], color=colors[name], lw=1.6, label=f"predicted{step1} ({name})")
        if multi and name != "train":
            _paths(ax, facts, pos[order], pred[order], "tab:green" if name == "test" else "tab:pink", name == "test")
        first = False
    if dated:
        allpos = np.concatenate([np.asarray(v, dtype=int) for v in rows.values() if v is not None and len(v)])
        ticks = np.unique(np.linspace(allpos.min(), allpos.max(), 9).astype(int))
        ax.set_xticks(ticks, [str(dates[t]) for t in ticks], rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(facts.date_column or "date")
    else:
        ax.set_xlabel("row of the target in the CSV")
    ax.set_ylabel(target)
    ax.legend(fontsize=8, ncols=3, loc="best")
    ax.grid(True, alpha=0.3)
    what = f"{len(facts.steps)}-step forecasts" if multi else "actual vs predicted"
    ax.set_title(title(opened, f"{target}: {what}, splits shaded, baselines on val/test"), fontsize=9)
    paths = [save(fig, out_dir / f"forecast.{fmt}")]

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in residuals.items():
        ax.hist(r, bins=30, alpha=0.55, color=colors[name], label=f"{name} (mean {r.mean():.3g}, sd {r.std():.3g})")
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel(f"prediction − actual ({target}{', step 1' if multi else ''})")
    ax.set_ylabel("windows")
    ax.legend(fontsize=8)
    ax.set_title(title(opened, "residuals"), fontsize=9)
    paths.append(save(fig, out_dir / f"residuals.{fmt}"))
    return paths


# ---------------------------------------------------------------- the choice

# facts type -> its figure; a subclass of a listed type inherits the figure (MRO lookup)
FIGURES: dict[type[Facts], Figure] = {
    CurveFacts: plot_curve,
    ImageFacts: plot_images,
    AddingFacts: plot_adding,
    CopyFacts: plot_copy,
    SeriesFacts: plot_series,
}


def figure_for(facts: Facts) -> Figure | None:
    """The figure registered for the nearest type in `type(facts).__mro__`; None when there is none."""
    for cls in type(facts).__mro__:
        if cls in FIGURES:
            return FIGURES[cls]
    return None
