"""The dataset contract: every builder returns a DataBundle.

    @register_dataset("name", Params)
    def build(params: Params, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle

`state` is a reopened run's data_state.json (fitted transforms to reuse); a builder that fits
nothing ignores it. What a dataset knows beyond its tensors (time axes, class names, dates) travels
as typed `facts` (lstmctl/data/facts.py): the figures and extra metrics follow from their type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, ClassVar

import torch

from lstmctl.errors import UserError


class Task(str, Enum):
    """What a model predicts; the head, loss, metrics and plots follow from it."""

    REGRESSION_STEP = "regression_step"  # one vector per time step (sine -> cosine)
    REGRESSION_SEQ = "regression_seq"  # one vector per sequence (window -> next value)
    CLASSIFICATION = "classification"  # one class per sequence (image rows -> digit)
    CLASSIFICATION_STEP = "classification_step"  # one class per time step (copy task)

    @property
    def per_step(self) -> bool:
        return self in (Task.REGRESSION_STEP, Task.CLASSIFICATION_STEP)

    @property
    def classification(self) -> bool:
        return self in (Task.CLASSIFICATION, Task.CLASSIFICATION_STEP)


IGNORE_INDEX = -100  # class targets with this value count in neither loss nor metrics


@dataclass
class Split:
    x: torch.Tensor  # (N, T, input_size) float32
    y: torch.Tensor  # see Task: (N, T, O) | (N, O) float32, (N,) | (N, T) int64

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx) -> "Split":
        return Split(self.x[idx], self.y[idx])

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True, eq=False)
class Facts:
    """Typed facts about a dataset beyond its tensors; the task-specific kinds live in data/facts.py.

    This base kind (random_sequences) has no figure and adds no metrics. It lives here, not in
    facts.py, so that DataBundle can default to it without base.py importing other data modules.
    """

    # which keys of extra_metrics() training records every epoch as val_<name> columns of metrics.csv
    # (regression tasks; e.g. SeriesFacts: ("mase",)). The rest of extra_metrics is for `eval` only.
    epoch_metrics: ClassVar[tuple[str, ...]] = ()

    def extra_metrics(self, split: str, pred: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Metrics beyond the task's standard ones; pred/target in the target's own units."""
        return {}

    def to_units(self, split: str, y: torch.Tensor) -> torch.Tensor | None:
        """Outputs or targets of `split` in the target's own units when undoing them needs more than the
        bundle's scaler (per-window norms, differencing: SeriesFacts); None: the scaler is enough."""
        return None


@dataclass
class DataBundle:
    task: Task
    train: Split
    test: Split
    input_size: int
    output_size: int  # regression: values per prediction; classification: number of classes
    val: Split | None = None
    facts: Facts = field(default_factory=Facts)  # typed: which figures and extra metrics apply
    # Plain numbers (JSON-able) that describe fitted transforms (e.g. a scaler); saved in the run.
    state: dict[str, Any] = field(default_factory=dict)
    # regression: a column name per output value, for `lstmctl predict` (None: prediction_0, 1, ...)
    target_names: list[str] | None = None
    # data augmentation: a random transform of a TRAINING batch (x, generator) -> x, applied by the
    # trainer to training batches only (validation, test, eval and predict see the data as it is);
    # the generator is seeded per (seed, epoch, step, rank), so a resumed run draws the same
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def split(self, name: str) -> Split:
        s = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if s is None:
            raise UserError(f"this dataset has no {name!r} split; use --split train or --split test")
        return s

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Scale raw inputs as the dataset scaled its training inputs (identity unless it fitted a scaler)."""
        scale = self.state.get("input_scale")
        if not scale:
            return x
        return (x - torch.as_tensor(scale["offset"], dtype=x.dtype)) / torch.as_tensor(scale["scale"], dtype=x.dtype)

    def inverse_target(self, y: torch.Tensor) -> torch.Tensor:
        """Map model outputs/targets back to the target's own units (identity unless scaled)."""
        scale = self.state.get("target_scale")
        if not scale:
            return y
        return y * torch.as_tensor(scale["scale"], dtype=y.dtype) + torch.as_tensor(scale["offset"], dtype=y.dtype)


def carve_val(train: Split, fraction: float, what: str = "training sequences") -> tuple[Split, Split | None]:
    """Take the last `fraction` of the training sequences as validation (chronological for series)."""
    if fraction <= 0:
        return train, None
    n = len(train)
    n_val = max(1, math.ceil(n * fraction))
    if n - n_val < 1:
        raise UserError(
            f"train.val_fraction={fraction} leaves no training data: there are only {n} {what}; "
            "lower it or cut the data into more sequences"
        )
    return train.take(slice(0, n - n_val)), train.take(slice(n - n_val, n))


def chunk(series: torch.Tensor, seq_len: int | None) -> torch.Tensor:
    """Cut a (T, F) series into (N, seq_len, F) consecutive chunks; None = one sequence."""
    if seq_len is None or seq_len >= series.shape[0]:
        return series.unsqueeze(0)
    n = series.shape[0] // seq_len
    return series[: n * seq_len].reshape(n, seq_len, *series.shape[1:])
