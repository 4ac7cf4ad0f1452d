"""Run directories: create with a unique id, find by id / prefix / `latest`, read and write their files.

A run id is a name, never a path: `<UTC yyyymmdd-HHMMSS>-<name>[-N]`. Directories are created with an
exclusive mkdir, so two runs started in the same second get two ids.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lstmctl import config
from lstmctl.errors import UserError

try:  # POSIX only: the kernel-held run lock. Elsewhere (Windows) a lock file stands in for it.
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DEFAULT_RUNS_DIR = "runs"
GROUPS_DIR = ".groups"  # <runs>/.groups/<group id>.json: the records of groups.py (list_runs skips dot-folders)


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    return Path(runs_dir or os.environ.get("LSTMCTL_RUNS_DIR") or DEFAULT_RUNS_DIR)


def group_record_path(root: Path, group_id: str) -> Path:
    return root / GROUPS_DIR / f"{group_id}.json"


def group_ids(root: Path) -> list[str]:
    """The ids of the groups recorded under `root` (see groups.py), for keeping run ids apart from them."""
    folder = root / GROUPS_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if RUN_ID_RE.match(p.stem))


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


class RunLocked(UserError):
    """Another live process holds the run's lock."""


_HELD: dict[str, "RunLock"] = {}  # locks this process holds, by path: taking one twice is a no-op


class RunLock:
    """An exclusive lock on a run directory (`run.lock`), held while a process trains it.

    POSIX: `fcntl.flock` on the file, so the kernel drops it when the holder dies (kill -9 included)
    and no stale lock can outlive its process; the file holds `pid host` for the message. Without
    fcntl: an O_CREAT|O_EXCL file whose dead owner's lock is taken over. Re-entrant per process.
    """

    def __init__(self, run: "RunDir"):
        self.run = run
        self.path = run.path / "run.lock"
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> "RunLock":
        key = str(self.path.resolve())
        held = _HELD.get(key)
        if held is not None:
            held._depth += 1
            return held
        me = f"{os.getpid()} {socket.gethostname()}\n".encode()
        if fcntl is not None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(f"cannot lock run {self.run.id}: {e.strerror} ({self.path}); is the runs directory writable?") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._refusal() from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, me, 0)
        else:  # pragma: no cover
            for _ in range(2):
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                    break
                except FileExistsError:
                    pid, host = self._owner()
                    if pid_alive(pid, host) is False:
                        self.path.unlink(missing_ok=True)  # the owner died: take the lock over
                        continue
                    raise self._refusal() from None
            else:
                raise self._refusal()
            os.write(fd, me)
        self._fd, self._depth = fd, 1
        _HELD[key] = self
        return self

    def release(self) -> None:
        self._depth -= 1
        if self._depth > 0 or self._fd is None:
            return
        _HELD.pop(str(self.path.resolve()), None)
        try:
            if fcntl is None:  # pragma: no cover
                self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing drops the flock
        finally:
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        _HELD.get(str(self.path.resolve()), self).release()

    def _owner(self) -> tuple[int | None, str | None]:
        try:
            pid, _, host = self.path.read_text(encoding="utf-8", errors="replace").strip().partition(" ")
            return int(pid), host or None
        except (OSError, ValueError):
            return None, None

    def _refusal(self) -> RunLocked:
        pid, host = self._owner()
        who = f"process {pid} on {host}" if pid else "another process"
        return RunLocked(
            f"run {self.run.id} is in use by {who} (a train or resume of this run); "
            "wait for it to finish or stop it first"
        )

    @staticmethod
    def is_held(run: "RunDir") -> bool | None:
        """Whether some process holds the run's lock; None when it cannot be told (no lock file, no fcntl)."""
        path = run.path / "run.lock"
        if str(path.resolve()) in _HELD:
            return True
        if fcntl is None or not path.exists():
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # also drops the probe's shared lock
        return False



def pid_alive(pid: int | None, host: str | None) -> bool | None:
    """Whether a recorded process still lives; None when it cannot be told (another host)."""
    if not pid or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # the files of a run
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def data_state(self) -> Path:
        return self.path / "data_state.json"

    def checkpoint(self, which: str) -> Path:
        return self.checkpoints / f"{which}.pt"

    # run.json
    def info(self) -> dict[str, Any]:
        try:
            return json.loads(self.run_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"run {self.id} is damaged: it has no run.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"run {self.id} is damaged: run.json is not valid JSON ({e})") from None

    def update(self, **fields: Any) -> dict[str, Any]:
        info = self.info() if self.run_json.exists() else {}
        info.update(fields)
        write_json(self.run_json, info)
        return info

    def status(self, info: dict | None = None) -> str:
        """The recorded status, or `died` for a `running` run whose process is gone.

        Gone means: the recorded pid no longer lives on this host, or nobody holds the run's lock
        any more (which also catches a pid reused by an unrelated process).
        """
        info = info if info is not None else self.info()
        status = info.get("status", "unknown")
        if status == "running":
            alive = pid_alive(info.get("pid"), info.get("host"))
            if alive is False or (alive is True and RunLock.is_held(self) is False):
                return "died"
        return status

    def lock(self) -> RunLock:
        """`with run.lock():` — exclusive use of this run by this process (train, resume)."""
        return RunLock(self)

    def load_config(self) -> config.Config:
        if not self.config_path.exists():
            raise UserError(f"run {self.id} is damaged: it has no config.yaml")
        return config.load(self.config_path)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_csv.exists():
            return []
        rows = []
        with open(self.metrics_csv, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows.append({k: _num(v) for k, v in row.items()})
        return rows


def _num(v: str | None):
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def create_run(name: str, runs_dir: str | os.PathLike | None = None) -> RunDir:
    root = runs_root(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the runs directory {root}: {e.strerror}; choose another with --runs-dir") from e
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{name}"
    for n in range(1, 10_000):
        rid = base if n == 1 else f"{base}-{n}"
        path = root / rid
        if group_record_path(root, rid).exists():  # a group's id is never a run's
            continue
        try:
            path.mkdir()  # exclusive: fails if another process took this id first
        except FileExistsError:
            continue
        (path / "checkpoints").mkdir()
        (path / "plots").mkdir()
        return RunDir(path)
    raise UserError(f"cannot find a free run id for {base} in {root}")


def check_run_id(ref: str) -> None:
    if ref != "latest" and (not RUN_ID_RE.match(ref) or ".." in ref):
        raise UserError(f"{ref!r} is not a run id: ids are names like 20260101-120000-sin2cos, not paths")


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunDir]:
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    return sorted(
        (RunDir(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and RUN_ID_RE.match(p.name)),
        key=_created_key,
        reverse=True,
    )


def _created_key(run: RunDir):
    try:
        created = run.info().get("created", "")
    except UserError:
        created = ""
    return (created or datetime.fromtimestamp(run.path.stat().st_mtime, timezone.utc).isoformat(), run.id)


def find_run(ref: str, runs_dir: str | os.PathLike | None = None) -> RunDir:
    """A run by full id, unique prefix, or `latest`."""
    check_run_id(ref)
    root = runs_root(runs_dir)
    runs = list_runs(root)
    if not runs:
        raise UserError(f"no runs in {root}; train one first: lstmctl train configs/sin2cos.yaml")
    if ref == "latest":
        return runs[0]
    exact = [r for r in runs if r.id == ref]
    if exact:
        return exact[0]
    matches = [r for r in runs if r.id.startswith(ref)]
    if not matches:
        groups = [g for g in group_ids(root) if g.startswith(ref)]
        if len(groups) == 1:  # a command that reads groups resolves them first (groups.resolve); this one cannot
            raise UserError(f"{groups[0]} is a group of runs, and this command takes a single run; "
                            f"`lstmctl show {groups[0]}` lists its runs")
        raise UserError(f"no run {ref!r} in {root}; `lstmctl runs` lists them")
    if len(matches) > 1:
        shown = ", ".join(r.id for r in matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise UserError(f"run id {ref!r} is ambiguous: it matches {shown}; give more of the id")
    return matches[0]
