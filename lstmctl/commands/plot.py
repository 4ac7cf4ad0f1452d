"""`lstmctl plot`: write a run's figures into its plots/ folder and print their paths (a group: each run's)."""

from __future__ import annotations

from lstmctl.groups import Group, members_or_error, resolve
from lstmctl.plots import plot_run


def plot(ref: str, figure_format: str = "png", checkpoint: str = "best", runs_dir=None) -> None:
    found = resolve(ref, runs_dir)
    for run in members_or_error(found) if isinstance(found, Group) else [found]:
        for path in plot_run(run, figure_format, checkpoint):
            print(path)
