"""`lstmctl inspect`: a run's gates, states and gradient flow over time, as figures in plots/ and numbers.

Prints the paths of the figures, then three tables: gate saturation, gradient flow (‖∂L/∂h_t‖ at
the first and last step) and the units that follow the target; --json prints them as one document.
"""

from __future__ import annotations

from rich.table import Table

from lstmctl.commands.output import console, fmt, print_json
from lstmctl.errors import UserError
from lstmctl.groups import single_run
from lstmctl.inspection_stats import HIGH, LOW, SPLITS, inspect_opened, summary
from lstmctl.plots.common import check_format
from lstmctl.plots.inspect import plot_inspection
from lstmctl.session import open_run


def inspect(ref: str, sample: int = 0, split: str = "test", checkpoint: str = "best", figure_format: str = "png",
            runs_dir=None, json_out: bool = False) -> None:
    check_format(figure_format)
    if split not in SPLITS:  # before the run is reopened, which can take a while on a big dataset
        raise UserError(f"--split must be test, val or train, got {split!r}")
    run = single_run(ref, runs_dir, "inspect")  # a group of seeds: one line, inspect one of its runs
    opened = open_run(run, checkpoint)
    insp = inspect_opened(opened, split, sample)
    paths = plot_inspection(opened, insp, run.plots, figure_format)
    numbers = summary(insp)
    if json_out:
        print_json({"run": run.id, "checkpoint": checkpoint, "epoch": opened.epoch,
                    "model": opened.cfg.model["name"], **numbers, "figures": [str(p) for p in paths]})
        return
    for path in paths:
        print(path)
    out = console()
    if numbers["saturation"]:
        out.print(_saturation_table(numbers, f"gate saturation over {insp.batch} {split} sequences"))
    out.print(_gradient_table(numbers, f"gradient flow over {insp.batch} {split} sequences (loss {insp.loss:.4g})"))
    if numbers["units"]:
        out.print(_units_table(numbers, f"units that follow the target (Pearson r, {numbers['units'][0]['measured']})"))


def _where(row: dict) -> str:
    return f"{row['layer']}" + ("" if row["direction"] == "forward" else f" {row['direction']}")


def _saturation_table(numbers: dict, caption: str) -> Table:
    table = Table(title=caption)
    for col in ("layer", "gate", "mean", f"< {LOW}", f"> {HIGH}", "saturated"):
        table.add_column(col, justify="left" if col in ("layer", "gate") else "right")
    for r in numbers["saturation"]:
        table.add_row(_where(r), r["gate"], f"{r['mean']:.3f}", _pct(r["low"]), _pct(r["high"]), _pct(r["saturated"]))
    return table


def _gradient_table(numbers: dict, caption: str) -> Table:
    table = Table(title=caption)
    for col in ("layer", "‖∂L/∂h‖ first step", "last step", "first / last"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in numbers["gradient_flow"]:
        table.add_row(_where(r), fmt(r["first"]), fmt(r["last"]), fmt(r["first_over_last"], 3))
    return table


def _units_table(numbers: dict, caption: str) -> Table:
    table = Table(title=caption)
    for col in ("layer", "state", "unit", "follows", "r"):
        table.add_column(col, justify="right" if col in ("unit", "r") else "left")
    for u in numbers["units"]:
        table.add_row(_where(u), u["state"], str(u["unit"]), u["target"], f"{u['r']:+.3f}")
    return table


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"
