"""What a study says (`tune show`, and the end of `tune`/`sweep`): the trials, the best, best.yaml, figures.

    {"study", "direction", "monitor", "mode", "storage",
     "best": {"value", "params", "run", "trial", "config": "<path of best.yaml>"} | null,
     "trials": [{"number", "state", "value", "params", "run", "epochs", ...}, ...]}

best.yaml is the best trial's resolved config (recorded with the trial, so it is there on any machine
that reads the study), written into the study's folder ready for `lstmctl train`. The figures are
figures.py's (only `tune show` draws, so `tune` itself never imports matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmctl.runs import write_text_atomic
from lstmctl.search.driver import retried_numbers


def trial_row(t, retried: set[int]) -> dict[str, Any]:
    attrs = t.user_attrs if t.state.name != "WAITING" else {}  # a queued retry carries its original's attributes
    row = {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
           "run": attrs.get("run"), "epochs": attrs.get("epochs")}
    if t.state.name == "PRUNED":
        row["pruned_at"] = attrs.get("pruned_at")
    if attrs.get("error") and t.state.name == "FAIL":
        row["error"] = attrs["error"]
    if t.number in retried:
        row["retried"] = True  # its parameters were queued again: a later trial ran them
    if t.system_attrs.get("failed_trial") is not None:
        row["retry_of"] = t.system_attrs["failed_trial"]
    return row


def best_trial(study):
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    if not complete:
        return None
    pick = max if study.direction.name == "MAXIMIZE" else min
    return pick(complete, key=lambda t: (t.value, -t.number) if pick is max else (t.value, t.number))


def write_best_yaml(study, folder: Path, best) -> Path | None:
    text = best.user_attrs.get("config") if best is not None else None
    if not text:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best.yaml"
    head = (f"# study {study.study_name}, trial {best.number}: {study.user_attrs.get('monitor', 'value')} {best.value:.6g}"
            f" (run {best.user_attrs.get('run')})\n# train it: lstmctl train {path}\n")
    write_text_atomic(path, head + text)
    return path


def study_data(study, folder: Path, storage: str) -> dict[str, Any]:
    """The study as data (the --json of tune show); writes best.yaml."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    best = best_trial(study)
    path = write_best_yaml(study, folder, best)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "monitor": study.user_attrs.get("monitor"),
        "mode": study.user_attrs.get("mode"),
        "storage": storage,
        "folder": str(folder),
        "counts": counts,
        "best": None if best is None else {
            "value": best.value, "params": dict(best.params), "run": best.user_attrs.get("run"), "trial": best.number,
            "config": str(path) if path else None},
        "trials": [trial_row(t, retried) for t in trials],
    }
