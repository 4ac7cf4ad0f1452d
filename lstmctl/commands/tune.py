"""`lstmctl tune CONFIG` (a search on Optuna) and `lstmctl tune show STUDY`.

    lstmctl tune CONFIG --trials N [--workers K] [--study NAME] [--storage URL] [--sampler S] [--pruner P]
    lstmctl tune show STUDY [--storage URL] [--json]     (commands/study.py: the same, with figures)

The work is in lstmctl/search/. `--workers K` starts K `python -m lstmctl tune` processes on one
study, train.threads = max(1, cores // K) each, and shares the trials out; they run in their own
sessions, so a Ctrl-C at the terminal reaches this process, which passes it on: each worker fails
its running trial, queues its parameters again and stops. Every trial is an ordinary run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rich.markup import escape

from lstmctl import config as config_mod
from lstmctl.commands.output import ID, NUM, TEXT, Col, fmt, print_json, print_table, say
from lstmctl.commands.seeds import share_threads
from lstmctl.errors import Interrupted, RunFailed, UserError
from lstmctl.search import driver, report
from lstmctl.search.driver import Plan
from lstmctl.search.space import spaces_of, yaml_value
from lstmctl.search.storage import describe, load_study, open_storage, require_optuna, study_dir
from lstmctl.train.signals import forwarded_to

NPROC_REFUSED = ("--nproc: a trial trains in one process. Pruning under DDP needs every rank to stop at the same "
                 "epoch on one decision (optuna#1417); tune trials side by side with --workers K instead")


def make_plan(config_path: Path, *, params, sets, study, sampler, pruner, trials, timeout, seed, heartbeat, grace,
              retries, runs_dir, quiet) -> Plan:
    raw = config_mod.read_yaml(config_path)
    spaces = spaces_of(raw.get("search"), params, str(config_path))
    name = study or _config_name(config_path, sets)
    if trials is not None and trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    return Plan(Path(config_path), list(sets or []), spaces, name, sampler, pruner, trials, timeout, seed,
                heartbeat, grace, retries, runs_dir, quiet)


def _config_name(config_path: Path, sets) -> str:
    """The study's default name: the config's `name` (its base's, or --set name=...), else the file's stem."""
    try:
        return config_mod.load(config_path, sets).name
    except UserError:  # valid only with the searched keys set: prepare() says what is wrong
        return Path(config_path).stem


def tune(config_path: Path, *, trials=None, timeout=None, study=None, storage=None, sampler="tpe", pruner="median",
         params=None, sets=None, workers=1, seed=None, heartbeat=10, grace=30, retries=2, nproc=None, runs_dir=None,
         quiet=False, json_out=False) -> None:
    """The command. With LSTMCTL_TUNE_SHARE set, this process is worker LSTMCTL_TUNE_WORKER of --workers K,
    running that many trials (-1: until the timeout) and no report (its parent prints it)."""
    if nproc is not None:
        raise UserError(NPROC_REFUSED)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    optuna = require_optuna()
    driver.check_choices(sampler, pruner)
    plan = make_plan(config_path, params=params, sets=sets, study=study, sampler=sampler, pruner=pruner, trials=trials,
                     timeout=timeout, seed=seed, heartbeat=heartbeat, grace=grace, retries=retries, runs_dir=runs_dir,
                     quiet=quiet or json_out)
    opened = open_storage(optuna, storage, runs_dir, plan.study, heartbeat=heartbeat, grace=grace, retries=retries) if storage else None
    driver.prepare(plan)  # after the database (unreachable: fail before data is built), before a journal file is made
    store = opened or open_storage(optuna, None, runs_dir, plan.study, heartbeat=heartbeat, grace=grace, retries=retries)
    st = driver.open_study(optuna, store, plan, int(os.environ.get("LSTMCTL_TUNE_WORKER", "0")))
    share = os.environ.get("LSTMCTL_TUNE_SHARE")
    if share is not None:  # one of --workers K
        driver.work(optuna, st, plan, None if int(share) < 0 else int(share))
        return
    optuna.storages.fail_stale_trials(st)
    left = driver.remaining(st, plan.trials)
    if left == 0:
        say(f"study {plan.study} already has its {plan.trials} trials; a larger --trials adds more")
    elif workers == 1:
        if not plan.quiet:
            say(f"study {plan.study}: {plan.monitor} ({plan.mode}), sampler {plan.sampler}, pruner {plan.pruner}, "
                f"{'until the timeout' if left is None else f'{left} trial(s) to run'}; storage {describe(storage, runs_dir, plan.study)}")
        driver.work(optuna, st, plan, left)
    else:
        run_workers(plan, storage, workers, left)
    show(plan.study, storage, runs_dir, json_out=json_out, study_obj=st)


def worker_command(plan: Plan, storage: str | None, k: int, n: int | None, threads: int) -> list[str]:
    args = [sys.executable, "-m", "lstmctl", "tune", "run", str(plan.config_path), "--study", plan.study,
            "--sampler", plan.sampler, "--pruner", plan.pruner, "--seed", str(plan.seed), "--heartbeat", str(plan.heartbeat),
            "--grace", str(plan.grace), "--retries", str(plan.retries),
            "--runs-dir", str(Path(plan.runs_dir or os.environ.get("LSTMCTL_RUNS_DIR") or "runs").resolve())]
    if plan.trials is not None:
        args += ["--trials", str(plan.trials)]
    if plan.timeout is not None:
        args += ["--timeout", str(plan.timeout)]
    if storage:
        args += ["--storage", storage]
    for key, space in plan.spaces.items():
        args += ["--param", f"{key}={yaml_value(space.describe())}"]
    for s in [*plan.sets, f"train.threads={threads}"]:
        args += ["--set", s]
    return args + (["--quiet"] if plan.quiet else [])


def run_workers(plan: Plan, storage: str | None, workers: int, left: int | None) -> None:
    """K worker processes on the study; their trial lines pass through; Ctrl-C is passed on to each."""
    threads = share_threads(workers, plan.threads)
    counts = [c for c in driver.shares(left, workers) if c is None or c > 0]
    if not plan.quiet:
        say(f"study {plan.study}: {len(counts)} workers, {threads} thread(s) each, "
            f"{'until the timeout' if left is None else f'{left} trial(s) to run'}")
    procs: list[tuple[subprocess.Popen, threading.Thread, list[str]]] = []
    with forwarded_to(lambda: [proc for proc, _, _ in procs]) as stop:
        try:
            for k, n in enumerate(counts):
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "LSTMCTL_TUNE_WORKER": str(k),
                       "LSTMCTL_TUNE_SHARE": str(-1 if n is None else n)}
                proc = subprocess.Popen(worker_command(plan, storage, k, n, threads), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
                last: list[str] = []
                relay = threading.Thread(target=_relay, args=(proc, last), daemon=True)
                relay.start()
                procs.append((proc, relay, last))
            for proc, relay, _ in procs:
                proc.wait()
                relay.join()
        finally:
            for proc, _, _ in procs:  # only left on an unexpected error here: no orphans
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    if stop:
        raise Interrupted(f"{signal.Signals(stop[0]).name}: study {plan.study} stopped, each worker's running trial "
                          "queued again; continue with the same lstmctl tune command", stop[0])
    failed = [(k, proc.returncode, last) for k, (proc, _, last) in enumerate(procs) if proc.returncode != 0]
    if failed:
        k, code, last = failed[0]
        raise RunFailed(f"tune worker {k} exited {code}: {last[-1] if last else 'no message'}")


def _relay(proc: subprocess.Popen, last: list[str]) -> None:
    for line in proc.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            last[:] = [line.strip().removeprefix("error: ")]


def study_data(name: str, storage: str | None = None, runs_dir=None, study_obj=None) -> tuple[dict, object]:
    """(the study as data, the optuna study): best.yaml written; missing storage or study: one line."""
    optuna = require_optuna()
    where = describe(storage, runs_dir, name)
    if study_obj is None:
        study_obj = load_study(optuna, open_storage(optuna, storage, runs_dir, name, must_exist=True), name, where)
    return report.study_data(study_obj, study_dir(runs_dir, name), where), study_obj


def show(name: str, storage: str | None = None, runs_dir=None, *, json_out: bool = False, study_obj=None) -> None:
    """How `tune` ends: the trials and the best (JSON with --json); `tune show` adds the figures (commands/study.py)."""
    data, _ = study_data(name, storage, runs_dir, study_obj)
    if json_out:
        print_json(data)
    else:
        print_study(data)


def print_study(data: dict) -> None:
    keys = list(dict.fromkeys(k for t in data["trials"] for k in t["params"]))
    # on a narrow terminal: trial, value and run first, then the searched parameters, state and epochs last
    cols = [Col("trial", 0, NUM, "right"), Col("state", 3, TEXT, min=8), Col(data["monitor"] or "value", 0, NUM),
            *[Col(k, 2, NUM) for k in keys], Col("epochs", 4, NUM, "right"), Col("run", 1, ID)]
    rows = []
    for t in data["trials"]:
        state = t["state"] + (f" @ {t['pruned_at']}" if t.get("pruned_at") else "") + (" (retried)" if t.get("retried") else "")
        run = fmt(t["run"]) if t["state"] != "FAIL" or t["run"] else fmt(t.get("error", ""))[:60]
        rows.append([str(t["number"]), escape(state), fmt(t["value"]), *[escape(fmt(t["params"].get(k))) for k in keys],
                     fmt(t["epochs"]), escape(run)])
    print_table(cols, rows, title=f"study {data['study']}: {len(data['trials'])} trials, {data['monitor']} ({data['mode']})")
    best = data["best"]
    if best is None:
        print(f"no completed trial yet in study {data['study']}")
        return
    params = ", ".join(f"{k}={fmt(v)}" for k, v in best["params"].items())
    print(f"best: trial {best['trial']}, {data['monitor']} {fmt(best['value'], 6)} ({params}), run {best['run']}")
    if best["config"]:
        print(f"best config: {best['config']}   (lstmctl train {best['config']})")
    for path in data.get("figures", []):
        print(path)
