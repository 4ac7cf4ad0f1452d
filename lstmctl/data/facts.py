"""Typed facts a dataset family states about itself, one dataclass per family.

A builder returns one of these as `DataBundle.facts`. Its TYPE decides which per-task figure
`lstmctl plot` draws (lstmctl/plots/tasks.py maps type -> figure), so a dataset that returns
SeriesFacts is guaranteed every field the series figure reads, and a new family that returns the
base `Facts` simply gets no per-task figure instead of a broken one. `extra_metrics` adds what the
task's standard metrics do not cover (MASE and the naive forecast; inline's per-sequence values).

Split-keyed fields (`t`, `rows`, `naive`, ...) use the split names "train", "val", "test".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from lstmctl import metrics
from lstmctl.data import series_windows
from lstmctl.data.base import Facts

__all__ = ["Facts", "CurveFacts", "ImageFacts", "AddingFacts", "CopyFacts", "SeriesFacts", "SeriesMember", "InlineFacts"]


@dataclass(frozen=True, eq=False)
class CurveFacts(Facts):
    """sine_cosine: one continuous curve cut into splits, drawn over its time axis."""

    t: dict[str, torch.Tensor | None]  # per split: the time of every step, shaped like the split's x[..., 0]
    input_label: str  # e.g. "sin(t)"
    target_label: str  # e.g. "cos(t)"


@dataclass(frozen=True, eq=False)
class ImageFacts(Facts):
    """mnist / fashion_mnist: images read row by row."""

    class_names: list[str]
    image_shape: list[int]  # [rows, columns]
    # pixel (0..255) = x * pixel_scale + pixel_offset: to show the images as they were
    pixel_scale: float = 1.0
    pixel_offset: float = 0.0
    files: dict[str, str] = field(default_factory=dict)  # where each IDX file was found


@dataclass(frozen=True, eq=False)
class AddingFacts(Facts):
    """The adding problem: sum the two values whose marker is 1."""

    length: int  # time steps per sequence
    marker_channel: int = 1  # input channel holding the 0/1 markers (channel 0: the values)
    baseline_predictor: str = "always 1.0"
    baseline_mse: float = 1 / 6  # Var(u1 + u2) for two U(0,1): what the constant 1.0 scores


@dataclass(frozen=True, eq=False)
class CopyFacts(Facts):
    """The copy task: replay a symbol sequence after a delay and a recall marker."""

    length: int  # time steps per sequence
    class_names: list[str]  # output classes: the symbols, then "blank"
    input_names: list[str]  # input channels: the symbols, "blank", "recall"
    recall_start: int  # first scored step
    chance_accuracy: float  # a uniform guess among the symbols


@dataclass(frozen=True, eq=False)
class SeriesMember:
    """One series of a long table (data.series_column): its values and its own cut and MASE scale."""

    name: str  # its id in the series column
    series: list[float]  # its target, row by row, in its own units
    dates: list[str] | None  # per row (None without date_column)
    val_start: int  # its first validation row (== test_start without one)
    test_start: int  # its first test row
    mase_scale: float | None  # its own in-sample naive (or seasonal naive) MAE


# the per-series keys of eval.json for a long table: series/<id>/<key>
MEMBER_KEYS = ("mae", "rmse", "mase", "naive_mae", "naive_mase", "mae_vs_naive", "snaive_mae", "drift_mae")


@dataclass(frozen=True, eq=False)
class SeriesFacts(Facts):
    """tabular: windows over one series; each window's targets are the H rows after its last row."""

    target: str  # the target column
    features: list[str]  # the input columns, in input order
    window: int
    horizon: int
    series: list[float]  # the whole target column in its own units, row by row
    dates: list[str] | None  # per row (None without date_column)
    date_column: str | None
    rows: dict[str, list[int]]  # per split present: the row index of each window's first target
    split_dates: dict[str, list[str]]  # per split present (with date_column): the date of each window's first target
    val_start: int  # first row of the validation part (== test_start without one)
    test_start: int  # first row of the test part
    naive: dict[str, torch.Tensor]  # per split present: the last-value forecast (N, H), original units
    mase_scale: float | None  # in-sample MAE on the training rows of the naive (or, with data.season, seasonal naive)
    steps: list[int] = field(default_factory=lambda: [1])  # target rows after the origin: 1..H (old runs: [H])
    # per baseline ("naive", "snaive", "drift"), per split: its (N, H) forecasts in original units
    baselines: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    season: int | None = None  # the seasonal naive's period (data.season, or inferred from the dates)
    freq: str | None = None  # the date column's regular step (pandas alias), when it has one
    # undoing the target's path: the scaler (offset, scale), data.target_transform, data.window_norm, and
    # per split each window's (anchor, spread, origin value) -- see series_windows.invert
    target_offset: float = 0.0
    target_scale: float = 1.0
    transform: str = "none"
    window_norm: str = "none"
    inverse: dict[str, torch.Tensor] = field(default_factory=dict)
    # a long table (data.series_column): its series, and per split the member index of each window. Then
    # `rows`/`split_dates` count rows within each window's own series, `series`, `dates`, `val_start` and
    # `test_start` are the longest series' (the rows data.test_start counts), the target scaler of each series
    # is folded into `inverse` (target_offset 0, target_scale 1) and `mase_scale` is None (each member has its own)
    members: list[SeriesMember] = field(default_factory=list)
    member: dict[str, list[int]] = field(default_factory=dict)
    series_column: str | None = None
    known_future: list[str] = field(default_factory=list)  # data.known_future columns
    calendar: list[str] = field(default_factory=list)  # data.calendar features (sin/cos channels)

    epoch_metrics: ClassVar[tuple[str, ...]] = ("mase",)  # val_mase in metrics.csv, beside val_mae, val_rmse, val_r2

    def to_units(self, split: str, y: torch.Tensor) -> torch.Tensor | None:
        """(N, H) outputs or targets of `split` in the target's own units when a per-window norm or a
        transform must be undone; None when the run's plain scaler (DataBundle.inverse_target) is enough."""
        if self.transform == "none" and self.window_norm == "none" and not self.members:
            return None
        inv = self.inverse[split].double().numpy()
        out = series_windows.invert(y.detach().double().cpu().numpy(), offset=self.target_offset,
                                    scale=self.target_scale, how=self.transform, anchor=inv[:, 0],
                                    spread=inv[:, 1], last=inv[:, 2])
        return torch.from_numpy(out)

    def extra_metrics(self, split: str, pred: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """MASE and the naive last-value forecast's metrics as naive_* beside the model's; then the seasonal
        naive's and drift's mae/rmse/mase. With H > 1 steps every model metric is the average over the
        steps (replacing the flat regression values) and mae_h1, rmse_h1, mase_h1, ... are added."""
        naive = self.naive.get(split)
        if naive is None:
            return {}
        pred, target, naive = pred.reshape(len(pred), -1), target.reshape(len(target), -1), naive.reshape(len(naive), -1)
        forecasts = {k: f.reshape(len(f), -1) for k in ("snaive", "drift") if (f := self.baselines.get(k, {}).get(split)) is not None}
        if not self.members:
            return _forecast_metrics(pred, target, naive, forecasts, self.mase_scale)
        # a long table: overall, MASE scales each window's errors by its own series' scale (the mean of the
        # series' MASEs when they have as many windows); then every series' own metrics as series/<id>/<key>
        idx = torch.as_tensor(self.member[split])
        scales = torch.tensor([m.mase_scale if m.mase_scale else float("nan") for m in self.members], dtype=torch.float64)
        out = _forecast_metrics(pred, target, naive, forecasts, scales[idx][:, None])
        for j, m in enumerate(self.members):
            sel = idx == j
            if sel.any():
                one = _forecast_metrics(pred[sel], target[sel], naive[sel], {k: f[sel] for k, f in forecasts.items()}, m.mase_scale)
                one.update(metrics.regression(pred[sel], target[sel]) if pred.shape[-1] == 1 else {})
                out.update({f"series/{m.name}/{k}": one[k] for k in MEMBER_KEYS if k in one})
        return out


def _forecast_metrics(pred, target, naive, forecasts: dict, scale) -> dict[str, Any]:
    """The model's and the naive's metrics (averaged over the steps), then each baseline's. `scale`: the MASE
    denominator, one number, or (N, 1) per window (NaN where a series has none: MASE undefined)."""
    if isinstance(scale, torch.Tensor):
        plain = _forecast_metrics(pred, target, naive, forecasts, None)
        if torch.isnan(scale).any():
            return plain
        s = scale.to(pred.dtype)
        scaled = _forecast_metrics(pred / s, target / s, naive / s, {k: f / s for k, f in forecasts.items()}, 1.0)
        return {k: (scaled[k] if "mase" in k else v) for k, v in plain.items()}
    both = metrics.horizon_forecast(pred, target, naive, scale)
    if pred.shape[-1] == 1:  # one step: exactly the metrics of one-output runs
        both = {k: v for k, v in both.items() if k == "mase" or k == "mae_vs_naive" or k.startswith("naive_")}
    for name, forecast in forecasts.items():
        both.update(metrics.baseline(name, forecast, target, scale))
    return both


@dataclass(frozen=True, eq=False)
class InlineFacts(Facts):
    """inline: a handful of sequences written in the config."""

    names: list[str]  # a label per training sequence
    test_is_train: bool  # no test_sequences given: the test split is the training data

    def extra_metrics(self, split: str, pred: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """With a few one-value regression targets, every prediction beside its target.

        (Class logits are (N, classes >= 2), so a classification split never matches.)
        """
        if not (pred.dim() == 2 and pred.shape[-1] == 1 and len(pred) <= 10):
            return {}
        # the labels name the training sequences; they fit the test split only when it is that data
        names = self.names if self.test_is_train and split != "val" else None
        out: dict[str, Any] = {"max_abs_error": float((pred - target).abs().max())}
        for i, (p, t) in enumerate(zip(pred[:, 0].tolist(), target[:, 0].tolist())):
            label = names[i] if names and i < len(names) else f"#{i}"
            out[f"prediction {label} (target {t:g})"] = p
        return out
