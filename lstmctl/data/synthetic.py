"""Synthetic sequences: random_sequences (plumbing), adding and copy (tasks only a memory solves).

All are generated from the run's seed with their own torch.Generator, one per split (train, val,
test draw from different streams), so a dataset never depends on global RNG state. Nothing is
fitted, so the builders ignore `state`.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from lstmctl.data.base import IGNORE_INDEX, DataBundle, Facts, Split, Task
from lstmctl.data.facts import AddingFacts, CopyFacts
from lstmctl.errors import UserError
from lstmctl.registry import register_dataset
from lstmctl.schema import Strict

SPLITS = ("train", "val", "test")


def _gen(seed: int, split: str, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + salt * 101 + SPLITS.index(split)) % 2**63)


def _counts(n_train: int, n_test: int, val_fraction: float) -> dict[str, int]:
    """Validation sequences are extra draws (not carved out of train): train keeps its size."""
    n_val = round(n_train * val_fraction) if val_fraction > 0 else 0
    if val_fraction > 0:
        n_val = max(1, n_val)
    return {"train": n_train, "val": n_val, "test": n_test}


# ---------------------------------------------------------------- random_sequences


class RandomParams(Strict):
    n_train: int = Field(64, ge=1, le=10_000_000, description="training sequences")
    n_test: int = Field(16, ge=1, le=10_000_000, description="test sequences")
    steps: int = Field(10, ge=1, le=100_000, description="time steps per sequence")
    features: int = Field(3, ge=1, le=100_000, description="input values per step")
    outputs: int = Field(2, ge=1, le=100_000, description="target values per step (classes when task is classification)")
    task: Literal["regression_step", "regression_seq", "classification", "classification_step"] = Field(
        "regression_step", description="which target shape to draw: per step or per sequence, values or classes"
    )


@register_dataset("random_sequences", RandomParams)
def build_random(p: RandomParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Standard-normal inputs (N, steps, features) with unrelated random targets: a shape and plumbing check."""
    task = Task(p.task)
    if task.classification and p.outputs < 2:
        raise UserError(f"data.outputs={p.outputs}: classification needs at least 2 classes")
    splits = {}
    for name, n in _counts(p.n_train, p.n_test, val_fraction).items():
        if n == 0:
            splits[name] = None
            continue
        g = _gen(seed, name, 1)
        x = torch.randn(n, p.steps, p.features, generator=g)
        if task is Task.REGRESSION_STEP:
            y = torch.randn(n, p.steps, p.outputs, generator=g)
        elif task is Task.REGRESSION_SEQ:
            y = torch.randn(n, p.outputs, generator=g)
        elif task is Task.CLASSIFICATION:
            y = torch.randint(0, p.outputs, (n,), generator=g)
        else:
            y = torch.randint(0, p.outputs, (n, p.steps), generator=g)
        splits[name] = Split(x, y)
    return DataBundle(
        task=task,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=p.features,
        output_size=p.outputs,
        facts=Facts(),  # a plumbing check: nothing worth a figure
    )


# ---------------------------------------------------------------- adding


class AddingParams(Strict):
    length: int = Field(100, ge=2, le=100_000, description="time steps per sequence (the memory span; 50-500 is usual)")
    n_train: int = Field(10_000, ge=1, le=10_000_000, description="training sequences")
    n_test: int = Field(1_000, ge=1, le=10_000_000, description="test sequences")
    first_half: bool = Field(
        True, description="draw the first marked position from the first half and the second from the second half"
    )


def adding_problem(n: int, length: int, g: torch.Generator, first_half: bool = True) -> Split:
    """x: (n, length, 2) = uniform values in [0, 1) and a 0/1 mask with exactly two ones; y: (n, 1) their sum."""
    values = torch.rand(n, length, generator=g)
    if first_half:
        half = length // 2
        a = torch.randint(0, half, (n,), generator=g)
        b = torch.randint(half, length, (n,), generator=g)
    else:  # two distinct positions anywhere
        a = torch.randint(0, length, (n,), generator=g)
        b = (a + torch.randint(1, length, (n,), generator=g)) % length
    mask = torch.zeros(n, length)
    rows = torch.arange(n)
    mask[rows, a] = 1.0
    mask[rows, b] = 1.0
    y = (values[rows, a] + values[rows, b]).unsqueeze(1)
    return Split(torch.stack([values, mask], dim=-1), y)


@register_dataset("adding", AddingParams)
def build_adding(p: AddingParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Hochreiter & Schmidhuber's adding problem: output the sum of the two marked values of a long sequence."""
    splits = {
        name: adding_problem(n, p.length, _gen(seed, name, 2), p.first_half) if n else None
        for name, n in _counts(p.n_train, p.n_test, val_fraction).items()
    }
    return DataBundle(
        task=Task.REGRESSION_SEQ,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=2,
        output_size=1,
        facts=AddingFacts(length=p.length, marker_channel=1),  # channels: value, marker
    )


# ---------------------------------------------------------------- copy


class CopyParams(Strict):
    symbols: int = Field(8, ge=1, le=1000, description="alphabet size of the sequence to remember")
    copy_length: int = Field(10, ge=1, le=10_000, description="symbols to remember and reproduce")
    delay: int = Field(20, ge=0, le=100_000, description="blank steps between the sequence and the recall marker")
    n_train: int = Field(10_000, ge=1, le=10_000_000, description="training sequences")
    n_test: int = Field(1_000, ge=1, le=10_000_000, description="test sequences")
    score_all_steps: bool = Field(
        False, description="also score the blank outputs before recall (default: only the recalled symbols count)"
    )

    @model_validator(mode="after")
    def _size(self):
        if (2 * self.copy_length + self.delay + 1) * (self.symbols + 2) > 50_000_000:
            raise ValueError("copy sequences this long do not fit in memory; shorten copy_length or delay")
        return self


def copy_problem(n: int, p: CopyParams, g: torch.Generator) -> Split:
    """One-hot inputs over symbols + blank + recall marker.

    Steps: `copy_length` random symbols, `delay` blanks, one recall marker, `copy_length` blanks during
    which the model must output the symbols in order. Targets are class ids per step: the symbol
    during recall, IGNORE_INDEX elsewhere (or the blank class when `score_all_steps`).
    """
    k, L, d = p.symbols, p.copy_length, p.delay
    blank, marker = k, k + 1
    T = 2 * L + d + 1
    seq = torch.randint(0, k, (n, L), generator=g)
    tokens = torch.full((n, T), blank, dtype=torch.int64)
    tokens[:, :L] = seq
    tokens[:, L + d] = marker
    x = torch.nn.functional.one_hot(tokens, k + 2).float()
    y = torch.full((n, T), blank if p.score_all_steps else IGNORE_INDEX, dtype=torch.int64)
    y[:, L + d + 1 :] = seq
    return Split(x, y)


@register_dataset("copy", CopyParams)
def build_copy(p: CopyParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """The copy (memory) task: remember a symbol sequence across a blank gap and replay it after a marker."""
    splits = {
        name: copy_problem(n, p, _gen(seed, name, 3)) if n else None
        for name, n in _counts(p.n_train, p.n_test, val_fraction).items()
    }
    T = 2 * p.copy_length + p.delay + 1
    return DataBundle(
        task=Task.CLASSIFICATION_STEP,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=p.symbols + 2,
        # classes: the symbols, plus the blank class (used as a target only with score_all_steps)
        output_size=p.symbols + 1,
        facts=CopyFacts(
            length=T,
            class_names=[str(i) for i in range(p.symbols)] + ["blank"],
            input_names=[str(i) for i in range(p.symbols)] + ["blank", "recall"],
            recall_start=p.copy_length + p.delay + 1,
            chance_accuracy=1 / p.symbols,
        ),
    )
