"""The figures of a study (`lstmctl tune show`), in <runs>/.studies/<study>/figures/, from
optuna.visualization.matplotlib: optimization history, slice, parameter importances (PED-ANOVA, which
needs no scikit-learn) and parallel coordinates. One the study cannot draw yet (too few completed
trials, a single parameter) is left out.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from lstmctl.plots.common import check_format, plt, save


def write_figures(optuna, study, folder: Path, fmt: str = "png") -> list[str]:
    """The study's figures in <folder>/figures/; those it cannot draw yet are left out."""
    check_format(fmt)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return []
    vis = optuna.visualization.matplotlib
    n_params = len({k for t in complete for k in t.params})
    figures = {"history": lambda: vis.plot_optimization_history(study)}
    if len(complete) >= 2 and n_params >= 1:
        figures["slice"] = lambda: vis.plot_slice(study)
        evaluator = getattr(optuna.importance, "PedAnovaImportanceEvaluator", None)
        if evaluator is not None and len(complete) >= 4:
            figures["importances"] = lambda: vis.plot_param_importances(study, evaluator=evaluator())
    if len(complete) >= 2 and n_params >= 2:
        figures["parallel"] = lambda: vis.plot_parallel_coordinate(study)
    out = folder / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in figures.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):  # e.g. no variance yet: leave it out
            plt.close("all")
            continue
        fig = np.atleast_1d(axes).flat[0].figure
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tight_layout and Optuna's colour-bar axes
            written.append(str(save(fig, out / f"{name}.{fmt}")))
    plt.close("all")
    return written
