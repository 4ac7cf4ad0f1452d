"""Where a study lives, and Optuna itself.

- Default: Optuna's journal storage (`JournalStorage` + `JournalFileBackend`, appending under a file
  lock: FlockLock below) in `<runs>/.studies/<study>/journal.log`: safe for several worker processes
  on this machine. Not for network file systems (optuna#5138): use a database there.
- `--storage postgresql+psycopg://user:password@host/db`: one study shared by several machines.
  Other SQLAlchemy URLs Optuna takes work too; `sqlite:///...` with a warning (it locks the whole
  file on each write: `database is locked` under parallel workers, optuna#820).
- `<runs>/.studies/<study>/` also holds what `tune show` writes: best.yaml and the figures.

Heartbeats: a trial's process records one every `heartbeat` seconds; a RUNNING trial without one for
`grace` seconds (its process was killed, or its machine died) is failed by the next worker that asks
for a trial, and a retry callback queues its parameters again (at most `retries` times). Optuna's
database storage has this built in; its journal storage has not, so HeartbeatJournal adds it with
the same hooks Optuna's optimize loop calls (the heartbeat is a system attribute of the trial).

Optuna is an optional extra (`pip install 'lstmctl[tune]'`): it is imported by `require_optuna`,
only when a search runs, never for `lstmctl --help`.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from lstmctl.errors import UserError
from lstmctl.runs import RUN_ID_RE, runs_root

try:  # POSIX: the journal's lock is the kernel's, as the run lock is (runs.py)
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: Optuna's own lock file
    fcntl = None

STUDIES_DIR = ".studies"  # beside .groups: list_runs skips dot-folders
INSTALL = "pip install 'lstmctl[tune]'"
HEARTBEAT_KEY = "lstmctl:heartbeat"


def require_optuna(what: str = "lstmctl tune"):
    """The optuna module, or a UserError naming the install command."""
    try:
        import optuna  # optional extra: imported only when a search runs
    except ImportError:
        raise UserError(f"{what} needs Optuna, an optional extra: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # lstmctl prints one line per trial itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def check_study_name(name: str) -> str:
    if not RUN_ID_RE.match(name or "") or ".." in name:
        raise UserError(f"{name!r} is not a study name: letters, digits, '.', '_' and '-', starting with a letter or digit")
    return name


def study_dir(runs_dir, name: str) -> Path:
    return runs_root(runs_dir) / STUDIES_DIR / check_study_name(name)


def journal_path(runs_dir, name: str) -> Path:
    return study_dir(runs_dir, name) / "journal.log"


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def describe(url: str | None, runs_dir, name: str) -> str:
    return safe_url(url) if url else str(journal_path(runs_dir, name))


def retry_callback(optuna, retries: int):
    """Optuna's retry of a stale trial (renamed in Optuna 4.9; both names work)."""
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=retries)


class FlockLock:
    """The journal file's write lock: fcntl.flock on `<journal>.flock`. The kernel drops it when its
    holder dies (kill -9 included), so a killed worker never leaves a stale lock behind; Optuna's
    default symlink lock would make every other worker wait 30 s before breaking one."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd  # only once held: JournalStorage serializes its threads' writes anyway
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


_JOURNAL_CLASS: list = []


def _heartbeat_journal(optuna):
    """JournalStorage with Optuna's heartbeat hooks (built once, when Optuna is there)."""
    if _JOURNAL_CLASS:
        return _JOURNAL_CLASS[0]
    from optuna.storages._heartbeat import BaseHeartbeat  # the interface optimize() checks; no public name

    TrialState = optuna.trial.TrialState

    class HeartbeatJournal(optuna.storages.JournalStorage, BaseHeartbeat):
        def __init__(self, backend, interval: float | None, grace: float | None, callback):
            super().__init__(backend)
            self.interval, self.grace, self.callback = interval, grace, callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now, stale = time.time(), []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                beat = t.system_attrs.get(HEARTBEAT_KEY) or (t.datetime_start.timestamp() if t.datetime_start else None)
                if beat is not None and now - beat > self.grace:
                    stale.append(t._trial_id)
            return stale

        def get_heartbeat_interval(self):
            return self.interval

        def get_heartbeat_stale_trial_callback(self):
            return self.callback

        def get_failed_trial_callback(self):  # the name Optuna < 4.9 asks for
            return self.callback

    _JOURNAL_CLASS.append(HeartbeatJournal)
    return HeartbeatJournal


def open_storage(optuna, url: str | None, runs_dir, name: str, *, heartbeat: float = 10, grace: float = 30,
                 retries: int = 2, must_exist: bool = False) -> Any:
    """The storage of study `name`: its journal file under the runs directory, or the database at `url`.
    Unreachable or unusable storage is one UserError line; `must_exist` (tune show): so is a missing journal."""
    callback = retry_callback(optuna, retries)
    if url is None:
        path = journal_path(runs_dir, name)
        if must_exist and not path.exists():
            raise UserError(f"no study {name!r} in {path.parent.parent}; start one with: lstmctl tune CONFIG --study {name}"
                            " (or give --storage URL where it lives)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FlockLock(path.with_name(path.name + ".flock")) if fcntl is not None else None
            backend = optuna.storages.journal.JournalFileBackend(str(path), lock_obj=lock)
        except OSError as e:
            raise UserError(f"cannot open the study journal {path}: {e.strerror or e}") from None
        return _heartbeat_journal(optuna)(backend, heartbeat, grace, callback)
    if url.startswith("sqlite"):
        print("warning: SQLite locks the whole file on each write ('database is locked' with several workers); "
              "prefer the default journal file on one machine, PostgreSQL across machines", file=sys.stderr)
    kwargs: dict[str, Any] = {"heartbeat_interval": max(1, int(heartbeat)), "grace_period": max(1, int(grace))}
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    kwargs["heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"] = callback
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": int(os.environ.get("LSTMCTL_DB_TIMEOUT", "10"))}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
    except ModuleNotFoundError as e:
        raise UserError(f"--storage {safe_url(url)} needs the database driver {e.name}: {INSTALL}") from None
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's and the driver's errors: one line
        raise UserError(f"cannot open the study storage {safe_url(url)}: {one_line(e)}") from None


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
    text = re.sub(r"^\([\w.]+\)\s*", "", text)  # SQLAlchemy's "(psycopg.OperationalError) " prefix
    return safe_url(text)[:300]


def load_study(optuna, storage, name: str, where: str):
    """An existing study, or one line saying it is not there."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UserError(f"no study {name!r} in {where}; `lstmctl tune CONFIG --study {name}` starts one") from None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a database that went away between open and load
        raise UserError(f"cannot read study {name!r} from {where}: {one_line(e)}") from None
