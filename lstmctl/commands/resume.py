"""`lstmctl resume`: continue a run in place from last.pt, or start a new run from a run's weights.

In place (`resume RUN [--epochs N]`): the run's lock is taken (a second resume or train of the same
run is refused), temp files of killed writers are removed, and the newest complete checkpoint is
loaded: `last.pt`, else `last.prev.pt` (the last.pt it replaced) with a warning naming the damaged
file. A checkpoint is "complete" when it loads under `weights_only=True`, carries every part the
loop restores, and was written for this run's data and model. The Trainer then restores model,
optimizer, scheduler, RNG states, counters and the partial epoch, truncates metrics.csv to the
checkpoint's epoch and goes on: on CPU the result is bit-for-bit that of an uninterrupted run.

New run (`resume RUN --from best --new-run`): a new run directory with the same config (train.epochs
set to --epochs when given), starting from the weights of best.pt (or last.pt) and nothing else:
fresh optimizer and schedule, epochs counted from 0, `parent` recorded in run.json.

Both forms rebuild the session with open_session (the run's saved data state, so a fitted scaler is
reused), in the same order of construction as a fresh start.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmctl import checkpoint as ckpt
from lstmctl import config as config_mod
from lstmctl.commands.output import finished_line, print_json, say, training_done
from lstmctl.commands.seeds import group_interrupted
from lstmctl.commands.train import start_training
from lstmctl.errors import Interrupted, LstmctlError, RunFailed, UserError
from lstmctl.groups import Group, member_info, members_or_error, resolve_group, single_run
from lstmctl.models.layers import describe_kernel
from lstmctl.runs import RunDir, create_run, find_run, utcnow
from lstmctl.session import load_data_state, open_session
from lstmctl.train.loop import Trainer
from lstmctl.train.recorder import record_new_run
from lstmctl.train.setup import check_monitor

RESUMABLE_KEYS = ("epoch", "model", "optimizer", "best", "early_stopping", "rng")
EARLY_STOPS = ("early_stopping", "stop_at_loss")


@dataclass
class ResumeResult:
    run: RunDir
    summary: dict[str, Any] | None  # None: nothing to train (already complete)
    message: str = ""  # for people: what happened
    notes: list[str] = field(default_factory=list)  # warnings printed before training


def resume(ref: str, runs_dir=None, *, epochs: int | None = None, source: str = "last", new_run: bool = False,
           overrides: list[str] | None = None, quiet: bool = False, json_out: bool = False) -> None:
    """The command: resume, then print how it ended (as `train` does). A group resumes its unfinished runs."""
    if new_run:
        single_run(ref, runs_dir, "resume --new-run")  # a group is refused here, in one line
    elif (group := resolve_group(ref, runs_dir)) is not None:
        if overrides or source != "last":
            raise UserError(f"{group.id} is a group: resume GROUP continues its runs in place from last.pt (no --set, no --from best)")
        return resume_group(group, epochs=epochs, quiet=quiet, json_out=json_out)
    r = resume_run(ref, runs_dir, epochs=epochs, source=source, new_run=new_run, overrides=overrides, quiet=quiet or json_out)
    training_done(r.run, r.summary, json_out=json_out, message=r.message)


def resume_group(group: Group, *, epochs: int | None = None, quiet: bool = False, json_out: bool = False) -> None:
    """Continue every unfinished run of a group (completed ones are skipped with a line each); start the
    seeds that never started from the group's record. A run that fails is reported and the others go on."""
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    record = group.record()
    members = group.members() if record.get("config") else members_or_error(group)
    if record.get("kind") == "backtest":  # folds share one seed: each member is its own entry
        plan = [(f"fold {i}", member_info(r).get("seed"), r) for i, r in enumerate(members, 1)]
    else:
        by_seed = {member_info(r).get("seed"): r for r in members}
        seeds = dict.fromkeys([*(record.get("seeds") or []), *by_seed])  # the planned seeds, then any other member
        plan = [(f"seed {seed}", seed, by_seed.get(seed)) for seed in seeds]
    done: dict[str, list] = {"resumed": [], "started": [], "skipped": [], "failed": []}
    for label, seed, run in plan:
        try:
            if run is None:  # never started (the group was stopped before its turn): start it as train --seeds would
                if not isinstance(record.get("config"), dict):
                    raise UserError(f"seed {seed} never started and {group.record_path} holds no config to start it from")
                cfg = config_mod.validate({**record["config"], "seed": seed})
                run, summary = start_training(cfg, group.root, source=record.get("source"), group=group.id, quiet=quiet or json_out,
                                              overrides=[*(record.get("overrides") or []), f"seed={seed}"])
                done["started"].append(run.id)
            elif run.status() == "completed" and epochs is None:
                say(f"skipped {run.id} ({label}): completed")
                done["skipped"].append(run.id)
                continue
            else:
                r = resume_run(run.id, group.root, epochs=epochs, quiet=quiet or json_out)
                summary = r.summary
                (done["resumed"] if summary is not None else done["skipped"]).append(run.id)
                if summary is None:
                    say(r.message)
                    continue
        except Interrupted as e:
            raise group_interrupted(group, e) from None
        except LstmctlError as e:
            done["failed"].append({"seed": seed, "run": run.id if run is not None else None, "error": str(e)})
            say(f"group {group.id}: {label} failed: {e}")
            continue
        if not json_out:
            say(finished_line(run, summary) + f" ({label})")
    if json_out:
        print_json({"group": group.id, "runs": [r.id for r in group.members()], **done})
    else:
        print(f"group id: {group.id}")
    if done["failed"]:
        raise RunFailed(f"group {group.id}: {len(done['failed'])} run(s) could not be resumed; the others finished")


def resume_run(
    ref: str,
    runs_dir=None,
    *,
    epochs: int | None = None,
    source: str = "last",
    new_run: bool = False,
    overrides: list[str] | None = None,
    quiet: bool = False,
) -> ResumeResult:
    """Continue run `ref` (in place), or start a new run from its `source` weights (`new_run`).

    `overrides` (`--set`) change the new run's config (e.g. a lower train.lr for fine-tuning); a run
    continued in place keeps the config it started with.
    """
    if source not in ("last", "best"):
        raise UserError(f"--from must be last or best, got {source!r}")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    run = find_run(ref, runs_dir)
    if new_run:
        return _new_run_from(run, source, epochs, overrides, runs_dir, quiet)
    if overrides:
        raise UserError(
            "--set only works with --new-run: a run continued in place keeps the config it started with "
            f"(try: lstmctl resume {run.id} --from best --new-run --set ...)"
        )
    if source == "best":
        raise UserError(
            "--from best starts a new run from the best weights: add --new-run "
            "(continuing in place needs last.pt, which holds the optimizer state)"
        )
    return _continue(run, epochs, quiet)


# ---------------------------------------------------------------- checkpoints


def _check_resumable(state: dict[str, Any], path: Path, cfg) -> None:
    missing = [k for k in RESUMABLE_KEYS if k not in state]
    if missing:
        raise UserError(f"checkpoint {path} cannot be resumed from: it has no {', '.join(missing)} (a best.pt or foreign file?)")
    _check_same_experiment(state, path, cfg)


def _check_same_experiment(state: dict[str, Any], path: Path, cfg) -> None:
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise UserError(f"checkpoint {path} has no config: it was not written by lstmctl for this run")
    want = cfg.to_dict()
    for key in ("data", "model"):
        if saved.get(key) != want[key]:
            raise UserError(f"checkpoint {path} belongs to another experiment: its {key} section differs from the run's config.yaml")


def load_resumable(run: RunDir, cfg) -> tuple[dict[str, Any] | None, Path | None, list[str]]:
    """The newest complete checkpoint to continue from: (state, path, warnings).

    (None, None, []) when the run never saved one (it was stopped before its first save): it then
    starts again from epoch 0, which gives the same result as the original start. When files exist
    but none is usable, the error names last.pt and what is wrong with it.
    """
    last = run.checkpoint("last")
    candidates = [last, ckpt.previous(last)]
    errors: list[tuple[Path, str]] = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = ckpt.load(path)
            _check_resumable(state, path, cfg)
        except UserError as e:
            errors.append((path, str(e)))
            continue
        notes = [f"warning: {msg}; resuming from {path.name} instead (epoch {int(state['epoch'])})" for _, msg in errors]
        return state, path, notes
    if not errors:
        return None, None, []
    raise UserError(errors[0][1] + ("" if len(errors) == 1 else f"; {errors[1][0].name} cannot be used either"))


# ---------------------------------------------------------------- in place


def _continue(run: RunDir, epochs: int | None, quiet: bool) -> ResumeResult:
    with run.lock():  # held until the Trainer is done; fit() takes it again (re-entrant)
        info = run.info()
        cfg = run.load_config()
        for folder in (run.checkpoints, run.path):  # leftovers of killed writers (we hold the lock)
            ckpt.remove_stale_temp_files(folder)
        state, used, notes = load_resumable(run, cfg)
        for n in notes:
            say(n)
        target = epochs or int(info.get("epochs") or cfg.train.epochs)
        done = int(state["epoch"]) if state is not None else 0
        step = int(state.get("step_in_epoch", 0)) if state is not None else 0
        status = run.status(info)
        stopped_early = status == "completed" and info.get("stop_reason") in EARLY_STOPS
        if done >= target or (stopped_early and epochs is None):
            own_target = int(info.get("epochs") or cfg.train.epochs)
            if status != "completed" and done >= own_target and not step:
                run.update(status="completed", epochs_done=done)  # it died after its final save
            why = f"stopped early ({info.get('stop_reason')})" if stopped_early and done < target else "complete"
            asked = f"; pass --epochs with more than {done} to train further"
            return ResumeResult(run, None, f"run {run.id} is already {why}: {done} of {target} epochs done{asked}", notes)
        if cfg.train.scheduler.name == "onecycle" and target > cfg.train.epochs:
            raise UserError(
                f"run {run.id} uses a onecycle schedule fixed to train.epochs={cfg.train.epochs}; it cannot go to {target} "
                f"epochs. Start a new run from its weights: lstmctl resume {run.id} --from best --new-run --epochs N"
            )
        if int(info.get("world_size") or 1) > 1:
            notes.append(
                f"warning: run {run.id} trained on {info['world_size']} processes (DDP); it continues on one, "
                "with the same state but not the same batches, so not bit-for-bit"
            )
            say(notes[-1])
        session = open_session(cfg, data_state=load_data_state(run.data_state))  # the scaler fitted at the start
        where = f"epoch {done}" + (f", step {step}" if step else "")
        if state is None:
            notes.append(f"run {run.id} had not saved a checkpoint yet: starting it again from epoch 0")
            say(notes[-1])
        elif not quiet:
            say(f"resuming {run.id} from {used.name} at {where}, to {target} epochs")
        history = list(info.get("resumes") or [])
        history.append(
            {"at": utcnow(), "from_epoch": done, "from_step": step, "checkpoint": used.name if used else None,
             "to_epochs": target, "pid": os.getpid(), "host": socket.gethostname()}
        )
        run.update(epochs=target, resumes=history, error=None)
        try:
            trainer = Trainer(session, run, resume=state, epochs=target, quiet=quiet)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"checkpoint {used} does not fit run {run.id} ({first}); it may come from another run") from e
        summary = trainer.fit()
    return ResumeResult(run, summary, f"resumed {run.id} from {where}", notes)


# ---------------------------------------------------------------- a new run from weights


def _new_run_from(parent: RunDir, source: str, epochs: int | None, overrides, runs_dir, quiet: bool) -> ResumeResult:
    cfg = parent.load_config()
    path = parent.checkpoint(source)
    if not path.exists():
        raise UserError(f"run {parent.id} has no {source}.pt checkpoint to start from")
    state = ckpt.load(path)
    if "model" not in state:
        raise UserError(f"checkpoint {path} holds no model weights")
    _check_same_experiment(state, path, cfg)
    if overrides:  # the new run's own config: the parent's, changed by --set (weights must still fit)
        cfg = config_mod.validate(config_mod.apply_overrides(cfg.to_dict(), overrides))
    if epochs is not None:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": epochs})})
    same_data = cfg.data == parent.load_config().data
    session = open_session(cfg, data_state=load_data_state(parent.data_state) if same_data else None)  # the parent's scaler
    check_monitor(cfg, session.data)  # e.g. --set train.monitor=...: checked before the new run directory exists
    try:
        session.model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise UserError(f"checkpoint {path} does not fit the model in {parent.config_path}: {str(e).splitlines()[0]}") from e
    describe_kernel(session.model, session.device)  # a wrong LSTMCTL_KERNEL fails here, before a run directory exists
    run = create_run(cfg.name, runs_dir if runs_dir is not None else parent.path.parent)
    pinfo = parent.info()
    epoch = int(state.get("epoch", 0))
    record_new_run(
        run, session,
        source=pinfo.get("source"),
        overrides=list(pinfo.get("overrides") or []) + list(overrides or []),
        parent={"run": parent.id, "checkpoint": f"{source}.pt", "epoch": epoch},
    )
    if not quiet:
        say(f"new run {run.id} from {parent.id}'s {source}.pt (epoch {epoch}): model weights only, fresh optimizer")
    summary = Trainer(session, run, quiet=quiet).fit()
    return ResumeResult(run, summary, f"new run {run.id} from {parent.id}/{source}.pt")
