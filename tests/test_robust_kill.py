"""kill -9 at any moment: the real-named checkpoint is always complete, temp files carry the writer's
pid, the run shows as `died`, and `lstmctl resume` continues -- to the same weights as a run never
killed (and a second resume while one runs is refused). Damaged or foreign last.pt files are never
loaded silently."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from lstmctl.runs import RunDir
from lstmctl import checkpoint as ckpt
from tests.robust_util import (
    EXACT,
    assert_same_run,
    load_ckpt,
    metrics_rows,
    only_run,
    popen,
    run_info,
    wait_for_rows,
    wait_until,
    write_cfg,
)

N = 25  # epochs of the run that gets killed


def _check_after_kill(run, pid):
    for f in (run / "checkpoints").glob("*.pt"):
        ckpt.load(f)  # complete and loadable under its real name, whenever the kill came
    for f in list((run / "checkpoints").glob(".*.tmp")) + list(run.glob(".*.tmp")):
        assert f.name.endswith(f".{pid}.tmp"), f.name  # a write cut short: named after its writer


def kill_seed() -> int:
    """The seed of the kill moments: $LSTMCTL_KILL_SEED to replay a failure, else a fresh one (each
    run of the suite tries other moments). Printed (pytest shows it beside a failure) and named in
    the assertion messages about the kills. A replay draws the same moments in epochs; their seconds
    follow this machine's measured epoch."""
    seed = int(os.environ.get("LSTMCTL_KILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill moments: LSTMCTL_KILL_SEED={seed}")
    return seed


def test_kill_9_repeatedly_then_resume_matches_an_unkilled_run(cli, tmp_path, runs_dir):
    seed = kill_seed()
    rng = random.Random(seed)
    delays = [f"LSTMCTL_KILL_SEED={seed}"]  # then each delay, in epochs and in seconds
    cfg = write_cfg(tmp_path / "exact.yaml", epochs=N)
    proc = popen("train", cfg)
    run = wait_for_rows(runs_dir, 1, proc, timeout=60)
    t0 = time.monotonic()
    wait_until(lambda: metrics_rows(run) >= 2, proc, poll=0.002)
    epoch_s = time.monotonic() - t0  # wall time of one epoch here, checkpoint writes included
    for attempt in range(3):
        epochs = rng.uniform(0.0, 6.0)  # somewhere in the next few epochs: steps, evals or writes
        delay = epochs * epoch_s
        delays.append(f"{epochs:.4f} epochs = {delay:.4f} s")
        print(f"kill {attempt + 1} after {delays[-1]}")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        if rc != -9:  # it finished first (a very slow machine): nothing left to kill
            assert rc == 0 and run_info(run)["status"] == "completed", (rc, delays)
            break
        _check_after_kill(run, proc.pid)
        assert RunDir(run).status() == "died", delays
        if attempt == 0:  # `runs` and `show` report it
            listed = json.loads(cli("runs", "--json").stdout)
            assert [r["status"] for r in listed] == ["died"]
            assert "died" in cli("show", run.name).output
        if attempt == 2:
            break
        # the next process: resume, killed again once it is training
        done_before = metrics_rows(run)
        proc = popen("resume", run.name)
        wait_until(lambda: run_info(run).get("pid") == proc.pid, proc, poll=0.002)  # it holds the lock now
        if attempt == 0:  # a second resume meanwhile is refused by the first one's lock
            proc.send_signal(signal.SIGSTOP)  # (held still, so it cannot finish meanwhile)
            try:
                refused = cli("resume", run.name, ok=False)
                assert refused.exit_code == 2 and f"is in use by process {proc.pid}" in refused.output, refused.output
            finally:
                proc.send_signal(signal.SIGCONT)
        wait_until(lambda: metrics_rows(run) > min(done_before, N - 1) or proc.poll() is not None, poll=0.002)
    r = cli("resume", run.name, "--quiet")  # finish the run in this process
    assert run_info(run)["status"] == "completed", (delays, r.output)
    assert not list((run / "checkpoints").glob(".*.tmp"))

    cli("train", cfg, "--quiet", "--runs-dir", tmp_path / "ref")
    assert_same_run(run, only_run(tmp_path / "ref"))


KILL_DURING_WRITE = """
import os, signal, sys, torch
from pathlib import Path
from lstmctl import checkpoint as ckpt
real_save = torch.save
def half_then_die(obj, f, *a, **k):
    real_save(obj, f, *a, **k)
    f.truncate(f.tell() // 2)  # half a file on disk ...
    f.flush(); os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the writer dies mid-write
torch.save = half_then_die
state = ckpt.load(sys.argv[1])
state["epoch"] = 999
ckpt.save(state, Path(sys.argv[1]), keep_previous=True)
"""


def test_kill_9_during_a_checkpoint_write(cli, tmp_path, runs_dir):
    cli("train", write_cfg(tmp_path / "exact.yaml", epochs=3), "--quiet")
    run = only_run(runs_dir)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    child = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, str(last)], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    assert last.read_bytes() == before and load_ckpt(last)["epoch"] == 3  # the real name still holds epoch 3
    leftovers = list((run / "checkpoints").glob(".*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".last.pt.")  # pid-named temp file
    assert leftovers[0].stat().st_size < len(before)

    r = cli("resume", run.name, "--epochs", "4", "--quiet")
    assert "warning" not in r.output
    assert load_ckpt(last)["epoch"] == 4
    assert not list((run / "checkpoints").glob(".*.tmp"))  # resume removed the dead writer's file


def _one_line(r, code=2):
    assert r.exit_code == code, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert "Traceback" not in r.output
    return lines


def test_damaged_last_falls_back_to_the_previous_one_exactly(cli, tmp_path, runs_dir):
    cli("train", write_cfg(tmp_path / "exact.yaml", epochs=3), "--quiet")
    run = only_run(runs_dir)
    last, prev = run / "checkpoints" / "last.pt", run / "checkpoints" / "last.prev.pt"
    assert load_ckpt(prev)["epoch"] == 2
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    r = cli("resume", run.name, "--epochs", "5", "--quiet")
    assert "warning: checkpoint" in r.output and "last.pt is damaged, truncated" in r.output
    assert "resuming from last.prev.pt instead (epoch 2)" in r.output
    cli("train", write_cfg(tmp_path / "ref.yaml", epochs=5), "--quiet", "--runs-dir", tmp_path / "ref")
    assert_same_run(run, only_run(tmp_path / "ref"))  # metrics.csv went back to epoch 2 and on


def test_no_usable_checkpoint_stops_with_one_line_naming_the_file(cli, tmp_path, runs_dir, write_config):
    cli("train", write_cfg(tmp_path / "exact.yaml", epochs=3), "--quiet")
    run = only_run(runs_dir)
    last, prev = run / "checkpoints" / "last.pt", run / "checkpoints" / "last.prev.pt"
    good_last = last.read_bytes()

    last.write_bytes(good_last[:100])
    prev.write_bytes(b"not a checkpoint at all")
    lines = _one_line(cli("resume", run.name, "--epochs", "5", ok=False))
    assert len(lines) == 1 and str(last) in lines[0] and "damaged, truncated" in lines[0], lines

    # a best.pt put in last.pt's place: complete, but it cannot be resumed from
    prev.unlink()
    last.write_bytes((run / "checkpoints" / "best.pt").read_bytes())
    lines = _one_line(cli("resume", run.name, "--epochs", "5", ok=False))
    assert len(lines) == 1 and "cannot be resumed from" in lines[0] and "optimizer" in lines[0], lines

    # a complete last.pt of another experiment (other model size): foreign, refused
    cli("train", write_cfg(tmp_path / "other.yaml", base={**EXACT, "model": {"name": "lstm", "hidden_size": 5}}, epochs=1),
        "--quiet", "--runs-dir", tmp_path / "other")
    last.write_bytes((only_run(tmp_path / "other") / "checkpoints" / "last.pt").read_bytes())
    lines = _one_line(cli("resume", run.name, "--epochs", "5", ok=False))
    assert len(lines) == 1 and "belongs to another experiment" in lines[0] and "model section" in lines[0], lines
    assert run_info(run)["status"] == "completed" and run_info(run)["epochs_done"] == 3  # nothing was touched


def test_status_tells_a_dead_run_from_a_live_one(tmp_path, monkeypatch):
    import os
    import socket

    from lstmctl import runs

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    here = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    run.update(status="running", pid=dead_pid, host=here)
    assert run.status() == "died"
    run.update(pid=os.getpid())  # a live pid, no lock file yet (a run just starting): running
    assert run.status() == "running"
    with run.lock():
        assert run.status() == "running"
        assert runs.RunLock.is_held(run) is True
    # the pid lives but nobody holds the run's lock: the pid was reused by another process
    assert runs.RunLock.is_held(run) is False and run.status() == "died"
    run.update(host="another-host")  # cannot be told from here: trust the record
    assert run.status() == "running"
    run.update(status="interrupted")
    assert run.status() == "interrupted"
