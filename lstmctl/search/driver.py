"""A study: what it optimizes, its sampler and pruner, the trial budget, and one worker's loop.

    prepare()   before anything is written: the spaces, the config with each key at a first value
                (validated, its data and model built once) -> the monitor and its mode (the study's
                direction), the number of epochs (hyperband's budget)
    open_study  create the study (its user attributes say what it optimizes) or continue it
    work()      one worker: optimize until the study has its trials (or the timeout), printing a
                line per trial; Ctrl-C fails the running trial and queues its parameters again

The budget (`--trials N`) counts the trials of the study in all, whoever ran them: completed,
pruned, failed and running trials count; a failed trial whose parameters were queued again (a
stale or interrupted one) does not, its retry does. So `lstmctl tune` run again with the same N
continues an unfinished study and does nothing on a finished one; a larger N adds trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmctl import config as config_mod
from lstmctl.errors import Interrupted, RunFailed, UserError
from lstmctl.search.space import Space, grid_size
from lstmctl.search.storage import retry_callback
from lstmctl.search.trial import Objective, report_every, say, trial_line
from lstmctl.session import open_session
from lstmctl.train.setup import check_stateful, monitors

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_TRIALS = 20


@dataclass
class Plan:
    """What one `lstmctl tune` (or `sweep`) asks for."""

    config_path: Path
    sets: list[str]
    spaces: dict[str, Space]
    study: str
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int | None = None
    timeout: float | None = None
    seed: int | None = None
    heartbeat: float = 10
    grace: float = 30
    retries: int = 2
    runs_dir: Any = None
    quiet: bool = False
    tags: dict[str, Any] = field(default_factory=dict)
    # filled by prepare()
    monitor: str = ""
    mode: str = ""
    epochs: int = 1
    threads: int | str = "auto"  # the config's train.threads (--workers shares the cores out below it)


def check_choices(sampler: str, pruner: str) -> None:
    if sampler not in SAMPLERS:
        raise UserError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise UserError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")


def prepare(plan: Plan) -> Plan:
    """Check everything that can be checked before a trial: the first point of the space builds and
    trains (config, data, model, monitor); the monitor gives the study its direction."""
    check_choices(plan.sampler, plan.pruner)
    if not plan.spaces:
        raise UserError(f"{plan.config_path}: nothing to search; add a search: section or --param KEY=SPACE")
    if plan.sampler == "grid":
        size = grid_size(plan.spaces)
        plan.trials = size if plan.trials is None else plan.trials
    first = [s.override(s.optuna_choices()[0] if s.kind == "categorical" else s.first()) for s in plan.spaces.values()]
    cfg = config_mod.load(plan.config_path, [*plan.sets, *first])  # a misspelt key: one line, with did-you-mean
    session = open_session(cfg)
    mon = monitors(cfg, session.data)
    check_stateful(cfg, len(session.data.train))
    plan.monitor, plan.mode, plan.threads = mon.name, mon.mode, cfg.train.threads
    epoch_space = plan.spaces.get("train.epochs")
    plan.epochs = int(epoch_space.high if epoch_space and epoch_space.kind == "int" else cfg.train.epochs)
    if plan.seed is None:
        plan.seed = cfg.seed
    if plan.trials is None and plan.timeout is None:
        plan.trials = DEFAULT_TRIALS
    return plan


def sampler_seed(seed: int, worker: int, existing: int) -> int:
    """The sampler's seed: --seed for worker 0 of a new study; mixed with the worker's index and the number of
    trials the study already has, so parallel workers, and a study continued later, never replay the same
    random draws (a sampler restarted from one seed would propose its first trials again)."""
    return (seed + 1_000_003 * worker + 10_007 * existing) % 2**32


def existing_trials(storage, name: str) -> int:
    try:
        return len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
    except KeyError:  # a new study
        return 0


def make_sampler(optuna, plan: Plan, worker: int = 0, existing: int = 0):
    """Seeded (sampler_seed)."""
    seed = sampler_seed(plan.seed or 0, worker, existing)
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if plan.sampler == "grid":
        return optuna.samplers.GridSampler({k: s.grid() for k, s in plan.spaces.items()}, seed=seed)
    # constant_liar: a running trial counts as a bad result, so parallel workers do not all try the same region
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(optuna, plan: Plan):
    if plan.pruner == "none":
        return optuna.pruners.NopPruner()
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(plan.epochs, 1), reduction_factor=3)
    # no pruning before 5 trials completed, nor in the first tenth of the epochs (early values say little)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, plan.epochs // 10))


def open_study(optuna, storage, plan: Plan, worker: int = 0):
    """Create the study or continue it (same metric and direction, else one line)."""
    direction = "maximize" if plan.mode == "max" else "minimize"
    study = optuna.create_study(storage=storage, study_name=plan.study, direction=direction, load_if_exists=True,
                                sampler=make_sampler(optuna, plan, worker, existing_trials(storage, plan.study)),
                                pruner=make_pruner(optuna, plan))
    attrs = study.user_attrs
    if attrs.get("monitor") and attrs["monitor"] != plan.monitor:
        raise UserError(f"study {plan.study} optimizes {attrs['monitor']}, and this config monitors {plan.monitor}; "
                        "give another --study or set train.monitor")
    if study.direction.name.lower() != direction:
        raise UserError(f"study {plan.study} is set to {study.direction.name.lower()}, and {plan.monitor} is better "
                        f"{'higher' if plan.mode == 'max' else 'lower'}; give another --study")
    if not attrs.get("monitor"):
        study.set_user_attr("monitor", plan.monitor)
        study.set_user_attr("mode", plan.mode)
        study.set_user_attr("config", str(plan.config_path))
        study.set_user_attr("space", {k: s.describe() for k, s in plan.spaces.items()})
    return study


def retried_numbers(trials) -> set[int]:
    """Trials whose parameters were queued again (Optuna's retry callback records the history)."""
    return {n for t in trials for n in (t.system_attrs.get("retry_history") or [])}


def used(trials) -> int:
    """How much of the budget the study has used: every trial but the queued ones and the retried failures."""
    retried = retried_numbers(trials)
    return sum(1 for t in trials if t.state.name != "WAITING" and not (t.state.name == "FAIL" and t.number in retried))


def remaining(study, total: int | None) -> int | None:
    return None if total is None else max(0, total - used(study.get_trials(deepcopy=False)))


def shares(n: int | None, workers: int) -> list[int | None]:
    """n trials shared out over the workers (None: no limit, each works until the timeout)."""
    if n is None:
        return [None] * workers
    return [n // workers + (1 if k < n % workers else 0) for k in range(workers)]


def work(optuna, study, plan: Plan, n_trials: int | None) -> None:
    """One worker: run trials until this worker's share is done, the study has `plan.trials`, or the timeout."""
    objective = Objective(optuna, config_path=plan.config_path, sets=plan.sets, spaces=plan.spaces, runs_dir=plan.runs_dir,
                          study=plan.study, monitor=plan.monitor, mode=plan.mode, every=report_every(plan.epochs), tags=plan.tags)
    total = plan.trials

    def after(study, trial) -> None:
        if not plan.quiet:
            say(trial_line(trial))
        if total is not None and used(study.get_trials(deepcopy=False)) >= total:
            study.stop()  # other workers or machines used the rest

    try:
        optuna.storages.fail_stale_trials(study)  # before counting: a killed worker's trial is retried, not counted
        if n_trials is not None and n_trials <= 0:
            return
        study.optimize(objective, n_trials=n_trials, timeout=plan.timeout, catch=(UserError, RunFailed),
                       callbacks=[after], gc_after_trial=False)
    except (Interrupted, KeyboardInterrupt) as e:
        where = requeue(optuna, study, objective.current, plan.retries)
        signum = 15 if isinstance(e, Interrupted) and e.exit_code == 143 else 2
        raise Interrupted(f"{e if isinstance(e, Interrupted) else 'interrupted'}; study {plan.study} stopped ({where}); "
                          "continue with the same lstmctl tune command", signum) from None


def requeue(optuna, study, trial, retries: int) -> str:
    """Fail an interrupted trial (if Optuna has not) and queue its parameters again, as a stale trial's
    are; says what became of it."""
    if trial is None:
        return "no trial was running"

    def frozen():
        return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)

    if frozen().state.name == "RUNNING":  # interrupted outside the objective: Optuna did not tell it
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    if frozen().state.name != "FAIL":
        return "no trial was running"
    before = len(study.get_trials(deepcopy=False))
    retry_callback(optuna, retries)(study, frozen())
    again = len(study.get_trials(deepcopy=False)) > before
    return f"trial {trial.number} marked failed" + (" and queued again" if again else f" ({retries} retries used)")
