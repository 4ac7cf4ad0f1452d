"""`lstmctl train CONFIG --seeds 0,1,2 [--parallel K]`: one config under several seeds, as one group.

    --seeds 0,1,2   the seeds themselves;  --seeds 5   seeds 0..4

Each member is an ordinary run whose config has its `seed` replaced (recorded as `--set seed=S`) and
whose run.json carries the group's id (lstmctl/groups.py: a tag on the runs plus a small record).
Every problem with the options or the config is one line and exit 2 before anything is written.

Sequential (the default): the members train one after another in this process (start_training).
`--parallel K`: K members at a time, each a real `python -m lstmctl train` process with the CPU
shared out, train.threads = max(1, cores // K). The members run in their own sessions, so a Ctrl-C
at the terminal reaches this process only, which passes one SIGINT (or SIGTERM) to each member:
its first signal saves and stops; a second Ctrl-C is passed on too, and quits them at once.
A member that fails is reported, the others still finish, and the command then exits 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from lstmctl import config as config_mod
from lstmctl.commands.output import finished_line, print_json, say
from lstmctl.commands.train import start_training
from lstmctl.errors import EXIT_SIGINT, Interrupted, LstmctlError, RunFailed, UserError
from lstmctl.groups import Group, create_group, discard_group, member_info
from lstmctl.train.signals import forwarded_to

MAX_SEED = 2**32 - 1
USAGE = "give N (seeds 0..N-1) or a list such as 0,1,2"


def parse_seeds(text: str) -> list[int]:
    """`5` -> [0, 1, 2, 3, 4]; `0,1,7` -> [0, 1, 7]; anything else is a UserError naming the problem."""
    items = [t.strip() for t in str(text).split(",")]
    if any(t == "" for t in items):
        raise UserError(f"--seeds {text!r} has an empty item; {USAGE}")
    values = []
    for t in items:
        try:
            values.append(int(t))
        except ValueError:
            raise UserError(f"--seeds {text!r}: {t!r} is not an integer; {USAGE}") from None
    if len(values) == 1:
        if not 1 <= values[0] <= 10_000:
            raise UserError(f"--seeds {values[0]}: the number of seeds must be between 1 and 10000; {USAGE}")
        return list(range(values[0]))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise UserError(f"--seeds {text!r} repeats seed {', '.join(map(str, repeated))}; give each seed once")
    wrong = [v for v in values if not 0 <= v <= MAX_SEED]
    if wrong:
        raise UserError(f"--seeds {text!r}: seed {wrong[0]} is out of range (0 to {MAX_SEED})")
    return values


def check_options(seeds: str | None, parallel: int | None, nproc: int | None, sets: list[str] | None) -> list[int] | None:
    """The seeds to train (None without --seeds), after the checks that combine train's options."""
    if seeds is None:
        if parallel is not None:
            raise UserError("--parallel K trains the seeds of --seeds K at a time; it needs --seeds (e.g. --seeds 4 --parallel 2)")
        return None
    if nproc is not None:
        raise UserError("--nproc and --seeds do not combine: one run per seed uses one process each (--parallel K runs K at once)")
    if parallel is not None and parallel < 1:
        raise UserError(f"--parallel must be at least 1, got {parallel}")
    if any(s.partition("=")[0].strip() == "seed" for s in sets or []):
        raise UserError("--set seed=... and --seeds both choose the seed; drop one of them")
    return parse_seeds(seeds)


def train_seeds(path: Path, sets: list[str] | None, runs_dir, seeds: list[int], *, parallel: int | None = None,
                quiet: bool = False, json_out: bool = False) -> None:
    """The command: validate, record the group, train its members, report."""
    sets = list(sets or [])
    cfg = config_mod.load(path, sets)  # config errors: one line, nothing written
    record = cfg.to_dict()
    record.pop("seed")
    group = create_group(cfg.name, seeds, runs_dir, source=str(path), overrides=sets, config=record, parallel=parallel)
    if parallel and not quiet and not json_out:
        say(f"group {group.id}: {len(seeds)} runs of {path} (seeds {', '.join(map(str, seeds))}), {min(parallel, len(seeds))} at a time")
    if parallel:
        errors = _parallel(path, sets, group, seeds, parallel, cfg.train.threads, quiet=quiet or json_out)
        if errors and not group.members():  # every member failed before it had a run: the config or data is wrong
            discard_group(group)
            raise UserError(next(iter(errors.values())))
    else:
        errors = _sequential(path, sets, runs_dir, group, seeds, cfg, quiet=quiet or json_out)
    report(group, seeds, errors, json_out=json_out)


def report(group: Group, seeds: list[int], errors: dict[int, str], *, json_out: bool) -> None:
    """The group id and its runs (JSON: {"group", "runs"}, plus "failed" when some failed); exit 1 if any did."""
    members = group.members()
    run_of = {member_info(r).get("seed"): r.id for r in members}
    failed = [{"seed": s, "run": run_of.get(s), "error": errors[s]} for s in seeds if s in errors]
    if json_out:
        print_json({"group": group.id, "runs": [r.id for r in members], **({"failed": failed} if failed else {})})
    else:
        print(f"group id: {group.id}")
        print(f"runs:     {' '.join(r.id for r in members) or '—'}")
        if members and not failed:
            say(f"next: lstmctl eval {group.id}   (then lstmctl show {group.id}, lstmctl compare {group.id} OTHER_GROUP)")
    if failed:
        which = ", ".join(str(f["seed"]) for f in failed)
        raise RunFailed(f"group {group.id}: {len(failed)} of {len(seeds)} runs failed (seed {which}); "
                        f"the others finished. Retry the unfinished ones with: lstmctl resume {group.id}")


def _sequential(path: Path, sets: list[str], runs_dir, group: Group, seeds: list[int], cfg, *, quiet: bool) -> dict[int, str]:
    errors: dict[int, str] = {}
    for i, seed in enumerate(seeds):  # no line before the first run: a data error stays the one line it is for train
        member = cfg.model_copy(update={"seed": seed})
        try:
            run, summary = start_training(member, runs_dir, source=str(path), overrides=[*sets, f"seed={seed}"],
                                          quiet=quiet, group=group.id)
        except Interrupted as e:
            raise group_interrupted(group, e) from None
        except LstmctlError as e:
            if i == 0 and isinstance(e, UserError) and not group.members():  # the config or data is wrong: say it once
                discard_group(group)
                raise
            errors[seed] = str(e)
            say(f"group {group.id}: seed {seed} failed: {e}")
            continue
        if not quiet:
            say(finished_line(run, summary) + f" (group {group.id}: seed {seed}, {i + 1} of {len(seeds)})")
    return errors


def group_interrupted(group: Group, e: Interrupted) -> Interrupted:
    signum = signal.SIGINT if e.exit_code == EXIT_SIGINT else signal.SIGTERM
    return Interrupted(f"{e}; the whole group continues with: lstmctl resume {group.id}", int(signum))


# ---------------------------------------------------------------- --parallel K


def member_command(path: Path, sets: list[str], group: Group, seed: int, threads: int) -> list[str]:
    """The `python -m lstmctl train` line of one member (its run.json records these overrides)."""
    args = [sys.executable, "-m", "lstmctl", "train", str(path)]
    for s in [*sets, f"seed={seed}", f"train.threads={threads}"]:
        args += ["--set", s]
    return args + ["--group-id", group.id, "--runs-dir", str(group.root.resolve()), "--quiet", "--json"]


def share_threads(parallel: int, configured) -> int:
    """train.threads of each member: the cores shared out (never more than the config's own number)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    share = max(1, cores // parallel)
    return min(share, configured) if isinstance(configured, int) else share


def _parallel(path: Path, sets: list[str], group: Group, seeds: list[int], parallel: int, configured_threads,
              *, quiet: bool) -> dict[int, str]:
    threads = share_threads(parallel, configured_threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    pending, running, errors = list(seeds), {}, {}
    logs = tempfile.TemporaryDirectory(prefix="lstmctl-seeds-")

    def announce(signum: int, received: list[int]) -> None:
        if not quiet or len(received) == 1:
            say(f"\n{signal.Signals(signum).name}: stopping the {len(running)} running member(s) of group {group.id}")

    with forwarded_to(lambda: [proc for proc, *_ in running.values()], announce) as stop, _cleanup(running, logs):
        while running or (pending and not stop):  # after a signal: wait for the running ones, start no more
            while pending and len(running) < parallel and not stop:
                seed = pending.pop(0)
                out = open(Path(logs.name) / f"{seed}.out", "w+", encoding="utf-8")
                err = open(Path(logs.name) / f"{seed}.err", "w+", encoding="utf-8")
                proc = subprocess.Popen(member_command(path, sets, group, seed, threads), stdout=out, stderr=err,
                                        env=env, start_new_session=True)
                running[seed] = (proc, out, err)
                if not quiet:
                    say(f"group {group.id}: seed {seed} started (process {proc.pid}, {threads} threads)")
            for seed, (proc, out, err) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[seed]
                message = _collect(group, seed, proc.returncode, out, err, quiet=quiet, stopped=bool(stop))
                if message is not None:
                    errors[seed] = message
            time.sleep(0.05)
    if stop:
        raise Interrupted(f"{signal.Signals(stop[0]).name}: group {group.id} stopped, each running member saved; "
                          f"continue with: lstmctl resume {group.id}", stop[0])
    return errors


@contextmanager
def _cleanup(running: dict, logs: tempfile.TemporaryDirectory):
    try:
        yield
    finally:
        for proc, out, err in running.values():  # only left on an unexpected error here: leave no orphan behind
            proc.kill()
            proc.wait()
        logs.cleanup()


def _collect(group: Group, seed: int, code: int, out, err, *, quiet: bool, stopped: bool = False) -> str | None:
    """One member's end: a line for people; the error text (None when it finished)."""
    out.seek(0)
    err.seek(0)
    text, problem = out.read(), err.read()
    out.close()
    err.close()
    if code == 0:
        try:
            done = json.loads(text.strip().splitlines()[-1])
            line = f"finished {done['run']}: {done['epochs_done']} epochs ({done['stop_reason']})"
        except (ValueError, IndexError, KeyError, TypeError):
            line = "finished"
        if not quiet:
            say(f"group {group.id}: seed {seed} {line}")
        return None
    lines = [ln.strip() for ln in problem.splitlines() if ln.strip()]
    message = (lines[-1] if lines else f"exit code {code}").removeprefix("error: ")
    say(f"group {group.id}: seed {seed} {'stopped' if stopped else 'failed'} (exit {code}): {message}")
    return message
