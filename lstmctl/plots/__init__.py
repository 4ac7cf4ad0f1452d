"""Figures of a run, written into its plots/ folder; matplotlib on the Agg backend (no display needed).

    plot_run(run, fmt="png", checkpoint="best")   loss.<fmt>, plus the per-task figures of its dataset
    plot_compare(runs, out, fmt="png")            the loss curves of several runs on one axis
    plot_compare_groups([(label, runs)], out)     per group of seeds: mean curves with a +-std band

Run-level figures (any dataset) live in run.py; per-task figures, chosen by the type of the
dataset's facts, in tasks.py; the backend, formats and saving in common.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lstmctl.plots.common import FORMATS, check_format
from lstmctl.plots.run import plot_compare, plot_compare_groups, plot_loss
from lstmctl.plots.tasks import FIGURES, figure_for
from lstmctl.runs import RunDir
from lstmctl.session import open_run

__all__ = ["FIGURES", "FORMATS", "figure_for", "plot_compare", "plot_compare_groups", "plot_loss", "plot_run"]


def plot_run(run: RunDir, fmt: str = "png", checkpoint: str = "best") -> list[Path]:
    """Write the run's figures; the per-task ones need the checkpoint (skipped while there is none)."""
    check_format(fmt)
    out_dir = run.plots
    out_dir.mkdir(exist_ok=True)
    paths = [plot_loss(run, out_dir, fmt)]
    if run.checkpoint(checkpoint).exists():
        opened = open_run(run, checkpoint)
        figure = figure_for(opened.data.facts)
        if figure is not None:
            with torch.no_grad():
                paths += figure(opened, opened.data.facts, out_dir, fmt)
    return paths
