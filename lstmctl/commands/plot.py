"""`lstmctl plot`: write a run's figures into its plots/ folder and print their paths."""

from __future__ import annotations

from lstmctl.plots import plot_run
from lstmctl.runs import find_run


def plot(ref: str, figure_format: str = "png", checkpoint: str = "best", runs_dir=None) -> None:
    for path in plot_run(find_run(ref, runs_dir), figure_format, checkpoint):
        print(path)
