"""inline: a handful of sequences and their targets written in the config itself.

For the smallest experiments, the ones people use to understand a cell (the Lightning tutorial's two
companies). Without `test_sequences` the test split IS the training data: with two examples there is
nothing to hold out, and the point is to see whether the cell can fit them at all. For the same
reason `val_on_train: true` makes the validation split the training sequences too (selection then
follows the fit, and says so); `train.val_fraction` holds out the last sequences instead.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
from pydantic import Field

from lstmctl.data.base import DataBundle, Split, Task, carve_val
from lstmctl.data.facts import InlineFacts
from lstmctl.errors import UserError
from lstmctl.registry import register_dataset
from lstmctl.schema import Strict

Step = Union[float, list[float]]
Target = Union[float, list[float]]


class InlineParams(Strict):
    sequences: list[list[Step]] = Field(
        ..., min_length=1, description="one list per sequence; each step a number or a list of features"
    )
    targets: list[Target] = Field(
        ..., min_length=1,
        description="one per sequence: a number or list (regression_seq), a class id (classification), a list per step (regression_step)",
    )
    task: Literal["regression_seq", "regression_step", "classification"] = Field(
        "regression_seq", description="what the targets are"
    )
    test_sequences: list[list[Step]] | None = Field(None, description="held-out sequences; null = test on the training sequences")
    test_targets: list[Target] | None = Field(None, description="targets of test_sequences")
    names: list[str] | None = Field(None, description="a label per training sequence, for plots and tables")
    val_on_train: bool = Field(
        False,
        description="validate on the training sequences themselves (for toys with nothing to hold out: the "
        "validation metrics then measure the fit, not generalisation); excludes train.val_fraction",
    )


def _inputs(seqs: list[list[Step]], where: str) -> torch.Tensor:
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        first = len(seqs[0])
        bad = next(i for i, s in enumerate(seqs) if len(s) != first)
        raise UserError(f"data.{where}: every sequence needs the same length; #0 has {first} steps, #{bad} has {len(seqs[bad])}")
    if 0 in lengths:
        raise UserError(f"data.{where}: a sequence needs at least one step")
    rows = []
    width = None
    for i, s in enumerate(seqs):
        steps = [[float(v)] if not isinstance(v, list) else [float(a) for a in v] for v in s]
        for st in steps:
            if width is None:
                width = len(st)
            if len(st) != width or not st:
                raise UserError(f"data.{where}[{i}]: every step needs the same number of features ({width}), got {len(st)}")
        rows.append(steps)
    return torch.tensor(rows, dtype=torch.float32)


def _targets(targets: list[Target], task: Task, n: int, steps: int, where: str) -> torch.Tensor:
    if len(targets) != n:
        raise UserError(f"data.{where}: {len(targets)} targets for {n} sequences; give one per sequence")
    if task is Task.CLASSIFICATION:
        bad = [t for t in targets if isinstance(t, list) or float(t) != int(t) or t < 0]
        if bad:
            raise UserError(f"data.{where}: classification targets are class ids 0, 1, 2, ..., got {bad[0]!r}")
        return torch.tensor([int(t) for t in targets], dtype=torch.int64)
    rows = [[float(t)] if not isinstance(t, list) else [float(v) for v in t] for t in targets]
    if task is Task.REGRESSION_STEP:
        if any(len(r) != steps for r in rows):
            raise UserError(f"data.{where}: regression_step needs one target per step ({steps} per sequence)")
        return torch.tensor(rows, dtype=torch.float32).unsqueeze(-1)
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise UserError(f"data.{where}: every target needs the same number of values, got {sorted(widths)}")
    return torch.tensor(rows, dtype=torch.float32)


@register_dataset("inline", InlineParams)
def build_inline(p: InlineParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Sequences and targets written in the config; the test split is the training data unless test_sequences is given."""
    task = Task(p.task)
    x = _inputs(p.sequences, "sequences")
    y = _targets(p.targets, task, len(x), x.shape[1], "targets")
    train = Split(x, y)
    if (p.test_sequences is None) != (p.test_targets is None):
        raise UserError("data.test_sequences and data.test_targets go together: give both or neither")
    if p.test_sequences is not None:
        tx = _inputs(p.test_sequences, "test_sequences")
        if tx.shape[2] != x.shape[2]:
            raise UserError(f"data.test_sequences have {tx.shape[2]} features per step, the training sequences {x.shape[2]}")
        test = Split(tx, _targets(p.test_targets, task, len(tx), tx.shape[1], "test_targets"))
        test_is_train = False
    else:
        test = Split(x.clone(), y.clone())
        test_is_train = True
    if p.names is not None and len(p.names) != len(x):
        raise UserError(f"data.names: {len(p.names)} names for {len(x)} sequences")
    if p.val_on_train:
        if val_fraction > 0:
            raise UserError("data.val_on_train validates on the training sequences; it excludes train.val_fraction (set it to 0)")
        val = Split(x.clone(), y.clone())
    else:
        train, val = carve_val(train, val_fraction, "inline sequences")
    if task is Task.CLASSIFICATION:
        out = int(max(int(y.max()), int(test.y.max()))) + 1
        out = max(out, 2)
    else:
        out = int(y.shape[-1])
    return DataBundle(
        task=task,
        train=train,
        val=val,
        test=test,
        input_size=int(x.shape[2]),
        output_size=out,
        facts=InlineFacts(names=p.names or [f"#{i}" for i in range(len(x))], test_is_train=test_is_train),
    )
