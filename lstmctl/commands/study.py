"""`lstmctl tune show STUDY`: the trials, the best, best.yaml and the study's figures.

The table and JSON are tune's own ending (commands/tune.py); the figures (matplotlib) are drawn only
here, so a search itself never imports matplotlib.
"""

from __future__ import annotations

from lstmctl.commands.output import print_json
from lstmctl.commands.tune import print_study, study_data
from lstmctl.search.figures import write_figures
from lstmctl.search.storage import require_optuna, study_dir


def show(name: str, storage: str | None = None, runs_dir=None, *, json_out: bool = False, fmt: str = "png") -> None:
    data, study = study_data(name, storage, runs_dir)
    data["figures"] = write_figures(require_optuna(), study, study_dir(runs_dir, name), fmt)
    if json_out:
        print_json(data)
    else:
        print_study(data)
