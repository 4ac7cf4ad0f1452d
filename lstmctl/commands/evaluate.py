"""`lstmctl eval`: score a run's checkpoint on a split, print the metrics, write eval.json."""

from __future__ import annotations

import sys
from typing import Any

from rich.table import Table

from lstmctl.commands.output import console, print_json
from lstmctl.errors import UserError
from lstmctl.evaluation import score
from lstmctl.runs import RunDir, find_run, write_json
from lstmctl.session import open_run

SPLITS = ("test", "val", "train")


def evaluate_run(run: RunDir, checkpoint: str = "best", split: str = "test") -> dict[str, Any]:
    """Reopen the run on the CPU, score `checkpoint` on `split`, write and return eval.json's content."""
    opened = open_run(run, checkpoint)
    metrics = score(opened.data, opened.model, split, opened.cfg.train.stateful)
    result = {
        "run": run.id,
        "split": split,
        "checkpoint": checkpoint,
        "epoch": opened.epoch,
        "task": opened.data.task.value,
        "metrics": metrics,
    }
    write_json(run.eval_json, result)
    return result


def evaluate(ref: str, checkpoint: str = "best", split: str = "test", runs_dir=None, json_out: bool = False) -> None:
    if split not in SPLITS:
        raise UserError(f"--split must be test, val or train, got {split!r}")
    run = find_run(ref, runs_dir)
    result = evaluate_run(run, checkpoint, split)
    if json_out:
        print_json(result)
        return
    print(f"{run.id}: {split} split, {checkpoint} checkpoint (epoch {result['epoch']})")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result["metrics"].items():
        if isinstance(v, (int, float)) or v is None:
            table.add_row(k, "—" if v is None else f"{v:.6g}")
    console().print(table)
    print(f"wrote {run.eval_json}", file=sys.stderr)
