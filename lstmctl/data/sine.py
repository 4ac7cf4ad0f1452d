"""sine_cosine: the tutorial experiment. Input sin(t), target cos(t)."""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator

from lstmctl.data.base import DataBundle, Split, Task, carve_val, chunk
from lstmctl.data.facts import CurveFacts
from lstmctl.errors import UserError
from lstmctl.registry import register_dataset
from lstmctl.schema import Strict


class SineCosineParams(Strict):
    t_start: float = Field(0.0, description="start of the time span")
    t_end: float = Field(12 * math.pi, description="end of the time span (default 12π)")
    points: int = Field(200, ge=4, le=10_000_000, description="samples over the span")
    train_fraction: float = Field(0.5, gt=0, lt=1, description="first share of the points used for training")
    seq_len: int | None = Field(
        None, ge=1, description="cut each split into sequences of this length; null = one sequence per split"
    )
    frequency: float = Field(1.0, gt=0, description="angular frequency multiplier: sin(f·t + phase)")
    phase: float = Field(0.0, description="phase shift in radians")
    noise: float = Field(0.0, ge=0, description="std of Gaussian noise added to the input (seeded)")

    @model_validator(mode="after")
    def _span(self):
        if self.t_end <= self.t_start:
            raise ValueError(f"t_end ({self.t_end}) must be greater than t_start ({self.t_start})")
        return self


@register_dataset("sine_cosine", SineCosineParams)
def build_sine_cosine(
    p: SineCosineParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None
) -> DataBundle:
    """Input sin(f·t+φ), target cos(f·t+φ): the model must infer the phase from the values it has seen."""
    # `state` is unused: nothing is fitted, the curve is the same every time
    t = torch.linspace(p.t_start, p.t_end, p.points, dtype=torch.float64)
    angle = p.frequency * t + p.phase
    x = torch.sin(angle)
    if p.noise > 0:
        g = torch.Generator().manual_seed(seed)
        x = x + p.noise * torch.randn(p.points, generator=g, dtype=torch.float64)
    y = torch.cos(angle)
    n_train = int(round(p.points * p.train_fraction))
    if not 2 <= n_train <= p.points - 2:
        raise UserError(f"data.train_fraction={p.train_fraction} leaves a split with fewer than 2 of {p.points} points")

    def make(lo: int, hi: int):
        xs = chunk(x[lo:hi, None].float(), p.seq_len)
        ys = chunk(y[lo:hi, None].float(), p.seq_len)
        ts = chunk(t[lo:hi].float(), p.seq_len)
        return Split(xs, ys), ts

    test, t_test = make(n_train, p.points)
    train, t_train = make(0, n_train)
    if val_fraction > 0 and len(train) == 1:
        # one sequence per split: validation is the last share of the training points, its own
        # sequence (started from a zero state, as the test sequence is), just before the test span
        n_val = max(2, math.ceil(n_train * val_fraction))
        if n_train - n_val < 2:
            raise UserError(
                f"train.val_fraction={val_fraction} leaves fewer than 2 of the {n_train} training points; lower it"
            )
        train, t_train = make(0, n_train - n_val)
        val, t_val = make(n_train - n_val, n_train)
    else:  # several sequences: the last of them, as before
        train, val = carve_val(train, val_fraction)
        n_val = 0 if val is None else len(val)
        t_val = t_train[len(t_train) - n_val :] if n_val else None
        t_train = t_train[: len(t_train) - n_val]
    return DataBundle(
        task=Task.REGRESSION_STEP,
        train=train,
        val=val,
        test=test,
        input_size=1,
        output_size=1,
        facts=CurveFacts(
            t={"train": t_train, "val": t_val, "test": t_test},
            input_label="sin(t)" if p.phase == 0 and p.frequency == 1 else "sin(f·t+φ)",
            target_label="cos(t)" if p.phase == 0 and p.frequency == 1 else "cos(f·t+φ)",
        ),
    )
