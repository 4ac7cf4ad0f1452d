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

    training: list = []

    def one_training():  # fit() has started: the run's lock is held, run.json has the pid
        for d in runs_dir.iterdir() if runs_dir.is_dir() else []:
            if (d / "metrics.csv").exists() and (d / "run.json").exists():
                pid = run_info(d).get("pid")
                for p in procs:
                    if p.pid == pid:
                        p.send_signal(signal.SIGSTOP)  # hold it still while it holds its run's lock
                        training.append((d, p))
                        return True
        return False

    wait_until(one_training, poll=0.002)
    busy, proc = training[0]
    try:
        assert run_info(busy)["status"] == "running"
        refused = cli("resume", busy.name, "--epochs", "40", ok=False)  # train holds its run's lock
        assert refused.exit_code == 2, refused.output
        assert f"run {busy.name} is in use by process {proc.pid}" in refused.output
    finally:
        proc.send_signal(signal.SIGCONT)

    results = [finish(p) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    ids = {out.split("run id:")[1].split()[0] for _, out, _ in results}
    assert len(ids) == 2
    assert {p.name for p in runs_dir.iterdir()} == ids
    listed = json.loads(cli("runs", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert [r["status"] for r in listed] == ["completed", "completed"]
    assert [r["epochs_done"] for r in listed] == [30, 30]
