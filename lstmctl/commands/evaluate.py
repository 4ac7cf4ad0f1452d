"""`lstmctl eval`: score a run's checkpoint on a split, print the metrics, write eval.json."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from lstmctl.commands.output import NUM, Col, console, print_json, print_stats, print_table, say
from lstmctl.errors import UserError
from lstmctl.evaluation import score
from lstmctl.groups import Group, aggregate, members_or_error, resolve
from lstmctl.runs import RunDir, write_json
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


def evaluate_group(group: Group, checkpoint: str = "best", split: str = "test") -> dict[str, Any]:
    """Evaluate every run of the group that has the checkpoint (each writes its eval.json) and aggregate
    each scalar metric: {"group", "runs", "split", "checkpoint", "metrics": {name: {mean, std, n, ci95}}}."""
    results, skipped = [], []
    for run in members_or_error(group):
        if not run.checkpoint(checkpoint).exists():
            say(f"skipped {run.id}: it has no {checkpoint}.pt yet (status {run.status()})")
            skipped.append(run.id)
            continue
        results.append(evaluate_run(run, checkpoint, split))
    if not results:
        raise UserError(f"no run of group {group.id} has a {checkpoint}.pt checkpoint to evaluate")
    return {"group": group.id, "runs": [r["run"] for r in results], "split": split, "checkpoint": checkpoint,
            "metrics": aggregate([r["metrics"] for r in results]), **({"skipped": skipped} if skipped else {})}


def evaluate(ref: str, checkpoint: str = "best", split: str = "test", runs_dir=None, json_out: bool = False) -> None:
    if split not in SPLITS:
        raise UserError(f"--split must be test, val or train, got {split!r}")
    found = resolve(ref, runs_dir)
    if isinstance(found, Group):
        result = evaluate_group(found, checkpoint, split)
        if json_out:
            print_json(result)
            return
        console().print(f"{found.id}: {split} split, {checkpoint} checkpoint, mean of {len(result['runs'])} runs", markup=False, highlight=False)
        print_stats(result["metrics"])
        say(f"wrote eval.json in each of the {len(result['runs'])} runs")
        return
    run = found
    result = evaluate_run(run, checkpoint, split)
    if json_out:
        print_json(result)
        return
    console().print(f"{run.id}: {split} split, {checkpoint} checkpoint (epoch {result['epoch']})", markup=False, highlight=False)
    rows = [[escape(k), "—" if v is None else f"{v:.6g}"] for k, v in result["metrics"].items() if isinstance(v, (int, float)) or v is None]
    print_table([Col("metric", 0, min=16), Col("value", 0, NUM, "right")], rows)
    say(f"wrote {run.eval_json}")
