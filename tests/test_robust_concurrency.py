"""Concurrent runs: two trains started together get two run directories and both finish; while a
process trains a run (train or resume), another resume of it is refused by the run's lock.

(A resume refused while another *resume* runs is in test_robust_kill.py, which has one running.)
"""

from __future__ import annotations

import json
import signal

from tests.robust_util import finish, popen, run_info, wait_until, write_cfg


def test_two_trains_at_the_same_moment_get_two_runs(cli, tmp_path, runs_dir):
    cfg = write_cfg(tmp_path / "exact.yaml", epochs=30)
    procs = [popen("train", cfg, "--quiet") for _ in range(2)]

    def both_training():
        dirs = [p for p in runs_dir.iterdir()] if runs_dir.is_dir() else []
        pids = {run_info(d).get("pid") for d in dirs if (d / "run.json").exists() and (d / "metrics.csv").exists()}
        return len(dirs) == 2 and pids == {p.pid for p in procs}

    wait_until(both_training, poll=0.005)
    busy = [d for d in runs_dir.iterdir() if run_info(d)["pid"] == procs[0].pid][0]
    procs[0].send_signal(signal.SIGSTOP)  # hold it still while it holds its run's lock
    try:
        assert run_info(busy)["status"] == "running"
        refused = cli("resume", busy.name, "--epochs", "40", ok=False)  # train holds its run's lock
        assert refused.exit_code == 2, refused.output
        assert f"run {busy.name} is in use by process {procs[0].pid}" in refused.output
    finally:
        procs[0].send_signal(signal.SIGCONT)

    results = [finish(p) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    ids = {out.split("run id:")[1].split()[0] for _, out, _ in results}
    assert len(ids) == 2
    assert {p.name for p in runs_dir.iterdir()} == ids
    listed = json.loads(cli("runs", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert [r["status"] for r in listed] == ["completed", "completed"]
    assert [r["epochs_done"] for r in listed] == [30, 30]
