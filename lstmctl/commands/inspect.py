"""`lstmctl inspect`: a run's gates, states and gradient flow over time, as figures in plots/ and numbers.

Prints the paths of the figures, then three tables: gate saturation, gradient flow (‖∂L/∂h_t‖ at
the first and last step) and the units that follow the target; --json prints them as one document.
"""

from __future__ import annotations

from rich.markup import escape

from lstmctl.commands.output import NUM, Col, fmt, print_json, print_table
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
    if numbers["saturation"]:
        print_table(*_saturation_table(numbers), title=f"gate saturation over {insp.batch} {split} sequences")
    print_table(*_gradient_table(numbers), title=f"gradient flow over {insp.batch} {split} sequences (loss {insp.loss:.4g})")
    if numbers["units"]:
        print_table(*_units_table(numbers), title=f"units that follow the target (Pearson r, {numbers['units'][0]['measured']})")


def _where(row: dict) -> str:
    return f"{row['layer']}" + ("" if row["direction"] == "forward" else f" {row['direction']}")


def _saturation_table(numbers: dict) -> tuple[list[Col], list[list[str]]]:
    cols = [Col("layer", 0, NUM), Col("gate", 0, NUM), Col("mean", 1, NUM, "right"), Col(f"< {LOW}", 2, NUM, "right"),
            Col(f"> {HIGH}", 2, NUM, "right"), Col("saturated", 1, NUM, "right")]
    rows = [[_where(r), r["gate"], f"{r['mean']:.3f}", _pct(r["low"]), _pct(r["high"]), _pct(r["saturated"])] for r in numbers["saturation"]]
    return cols, rows


def _gradient_table(numbers: dict) -> tuple[list[Col], list[list[str]]]:
    cols = [Col("layer", 0, NUM), Col("‖∂L/∂h‖ first step", 0, NUM, "right"), Col("last step", 0, NUM, "right"),
            Col("first / last", 1, NUM, "right")]
    rows = [[_where(r), fmt(r["first"]), fmt(r["last"]), fmt(r["first_over_last"], 3)] for r in numbers["gradient_flow"]]
    return cols, rows


def _units_table(numbers: dict) -> tuple[list[Col], list[list[str]]]:
    cols = [Col("layer", 0, NUM), Col("state", 0, NUM), Col("unit", 0, NUM, "right"), Col("follows", 1, min=12), Col("r", 0, NUM, "right")]
    rows = [[_where(u), u["state"], str(u["unit"]), escape(str(u["target"])), f"{u['r']:+.3f}"] for u in numbers["units"]]
    return cols, rows


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"
