"""One trial: sample the spaces, validate the config they make, train it as an ordinary run.

The run is what `lstmctl train` makes (config.yaml, metrics.csv, checkpoints, figures later), tagged
in run.json with `"study"` and `"trial"`; the trial records its run id, the resolved config (for
best.yaml) and the epochs it trained as user attributes, so a study read from another machine still
says which run each trial is. The monitored value (train.monitor) of each epoch that records it is
reported to the pruner, and a trial the pruner stops ends as a run with status `pruned`.

A sampled config that does not validate (or whose data or model cannot be built) fails that trial
with the reason, before any run directory exists; the search goes on.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

from lstmctl import config as config_mod
from lstmctl.config import Config
from lstmctl.errors import Interrupted, RunFailed, UserError
from lstmctl.models.layers import describe_kernel
from lstmctl.runs import RunDir, create_run
from lstmctl.search.space import Space
from lstmctl.session import open_session, resolve_device
from lstmctl.train.hooks import EpochHook
from lstmctl.train.loop import Trainer
from lstmctl.train.recorder import record_new_run
from lstmctl.train.setup import check_stateful, monitors
from lstmctl.train.tracking import require_tensorboard


def start_trial_run(cfg: Config, runs_dir, *, source: str, overrides: list[str], tags: dict[str, Any],
                    epoch_hook: EpochHook | None, expect: tuple[str, str], on_run=None) -> tuple[RunDir, dict]:
    """`lstmctl train`'s start (commands/train.py), in one process and with the pruner's epoch hook: every
    check before the run directory exists (and the monitor the study optimizes: `expect`), then record and fit."""
    device = resolve_device(cfg.device)
    if cfg.logging.tensorboard:
        require_tensorboard()
    session = open_session(cfg, device=device)
    mon = monitors(cfg, session.data)  # a monitor the run never records: ConfigError, before a run directory exists
    if (mon.name, mon.mode) != expect:
        raise UserError(f"this trial's config monitors {mon.name} ({mon.mode}); the study optimizes {expect[0]} "
                        f"({expect[1]}): one study, one metric")
    check_stateful(cfg, len(session.data.train))
    describe_kernel(session.model, session.device)
    run = create_run(cfg.name, runs_dir)
    record_new_run(run, session, source=source, overrides=overrides, **tags)
    if on_run is not None:
        on_run(run)
    return run, Trainer(session, run, quiet=True, epoch_hook=epoch_hook).fit()


MAX_REPORTS = 100  # values a trial reports: each costs a write to the study (a file append with fsync, or a query)


def report_every(epochs: int) -> int:
    """Report every epoch up to MAX_REPORTS epochs, every k-th beyond: the same epochs in every trial of a
    study (the pruners compare trials at equal steps), and at most ~1 ms of writes per 100 epochs."""
    return max(1, math.ceil(epochs / MAX_REPORTS))


class ReportEpochs:
    """The epoch hook: report the monitored value of every `every`-th epoch that records it; True (stop:
    pruned) when the pruner says so."""

    def __init__(self, trial, monitor: str, every: int = 1):
        self.trial, self.monitor, self.every = trial, monitor, every
        self.pruned_at: int | None = None

    def __call__(self, epoch: int, row: dict[str, Any]) -> bool:
        value = row.get(self.monitor)
        if value is None or not math.isfinite(value) or epoch % self.every:
            return False
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False


class Objective:
    """Called by Optuna with each trial; returns the best monitored value, raises TrialPruned or fails the trial.

    `monitor`/`mode`: the study's (a trial whose config watches another column fails: one study, one metric).
    `every`: report_every(the study's epochs). `tags`: more run.json fields for every trial's run (sweep: its id).
    """

    def __init__(self, optuna, *, config_path: Path, sets: list[str], spaces: dict[str, Space], runs_dir, study: str,
                 monitor: str, mode: str, every: int = 1, tags: dict[str, Any] | None = None):
        self.optuna, self.config_path, self.sets, self.spaces = optuna, Path(config_path), list(sets), spaces
        self.every = every
        self.runs_dir, self.study, self.monitor, self.mode = runs_dir, study, monitor, mode
        self.tags = dict(tags or {})
        self.current = None  # the trial this process is running (for Ctrl-C)

    def __call__(self, trial) -> float:
        self.current = trial
        for stale in ("error", "run", "epochs", "best_epoch", "pruned_at"):  # a retried trial inherits its original's
            if stale in trial.user_attrs:
                trial.set_user_attr(stale, None)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        overrides = [*self.sets, *(space.override(space.suggest(trial)) for space in self.spaces.values())]
        hook = ReportEpochs(trial, self.monitor, self.every)
        try:
            cfg = config_mod.load(self.config_path, overrides)
            trial.set_user_attr("config", config_mod.dump(cfg))
            run, summary = start_trial_run(
                cfg, self.runs_dir, source=str(self.config_path), overrides=overrides, epoch_hook=hook,
                expect=(self.monitor, self.mode),
                tags={"study": self.study, "trial": trial.number, **self.tags},
                on_run=lambda r: trial.set_user_attr("run", r.id))
        except Interrupted as e:
            trial.set_user_attr("error", f"interrupted: {e}")
            raise
        except (UserError, RunFailed) as e:
            trial.set_user_attr("error", str(e))
            raise
        best = summary["best"]
        trial.set_user_attr("epochs", summary["epochs_done"])
        trial.set_user_attr("best_epoch", best.get("epoch"))
        if hook.pruned_at is not None:
            trial.set_user_attr("pruned_at", hook.pruned_at)
            raise self.optuna.TrialPruned(f"pruned at epoch {hook.pruned_at}")
        if best.get("value") is None:
            raise self._fail(trial, f"run {run.id} never recorded a finite {self.monitor}")
        return float(best["value"])

    def _fail(self, trial, message: str) -> RunFailed:
        trial.set_user_attr("error", message)
        return RunFailed(message)


def trial_line(t) -> str:
    """One line per finished trial, for people (stderr)."""
    attrs = t.user_attrs
    params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    run = f", run {attrs['run']}" if attrs.get("run") else ""
    state = t.state.name
    if state == "COMPLETE":
        what = f"{_short(t.value)} in {attrs.get('epochs')} epochs{run}"
    elif state == "PRUNED":
        what = f"at epoch {attrs.get('pruned_at') or attrs.get('epochs')}" + (f" ({_short(t.value)})" if t.value is not None else "") + run
    else:
        what = (attrs.get("error") or "failed") + run
    return f"trial {t.number} {state}: {what}" + (f"  [{params}]" if params else "")


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
