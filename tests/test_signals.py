"""Ctrl-C / SIGTERM sent to a real `lstmctl train` process: the step finishes, last.pt is saved, the
run says `interrupted`, the exit code is 130/143 with a line telling how to resume, and the resumed
run ends bit-for-bit where an uninterrupted one does. A second Ctrl-C quits at once, files whole."""

from __future__ import annotations

import signal
import subprocess

from lstmctl import checkpoint as ckpt
from tests.robust_util import (
    EXACT,
    assert_same_run,
    finish,
    load_ckpt,
    metrics_rows,
    only_run,
    popen,
    run_info,
    stderr_so_far,
    wait_until,
    write_cfg,
)


def test_sigint_and_sigterm_save_state_and_resume_is_exact(cli, tmp_path):
    """Two real training processes (started together to share the start-up time): one gets SIGINT, one SIGTERM."""
    cfg = write_cfg(tmp_path / "long.yaml", epochs=100_000)
    cases = {signal.SIGINT: 130, signal.SIGTERM: 143}
    procs = {sig: popen("train", cfg, "--runs-dir", tmp_path / sig.name) for sig in cases}
    runs = {}

    def signal_each_when_ready():  # each as soon as it has two epochs: keeps the runs short
        for sig, proc in procs.items():
            if sig not in runs:
                dirs = list((tmp_path / sig.name).glob("*/metrics.csv"))
                if dirs and metrics_rows(dirs[0].parent) >= 2:
                    proc.send_signal(sig)
                    runs[sig] = dirs[0].parent
        return len(runs) == len(procs)

    wait_until(signal_each_when_ready)
    for sig, proc in procs.items():
        run = runs[sig]
        rc, out, err = finish(proc)
        assert rc == cases[sig], err
        assert "Traceback" not in err
        assert f"{sig.name}: stopping after this step and saving" in err
        assert f"Continue with: lstmctl resume {run.name}" in err.strip().splitlines()[-1]
        info = run_info(run)
        assert info["status"] == "interrupted"
        state = load_ckpt(run / "checkpoints" / "last.pt")
        assert info["epochs_done"] == state["epoch"] >= 2
        assert not list((run / "checkpoints").glob(".*.tmp"))

    # resume both to two epochs past the later interruption; both must equal one straight run
    n = max(load_ckpt(r / "checkpoints" / "last.pt")["epoch"] for r in runs.values()) + 2
    cli("train", write_cfg(tmp_path / "ref.yaml", epochs=n), "--quiet", "--runs-dir", tmp_path / "ref")
    reference = only_run(tmp_path / "ref")
    for sig, run in runs.items():
        cli("resume", run.name, "--epochs", n, "--quiet", "--runs-dir", tmp_path / sig.name)
        assert run_info(run)["status"] == "completed"
        assert_same_run(run, reference)


# A model whose training steps hold forever while $LSTMCTL_TEST_HOLD names a folder, after writing
# "in-step" there: the second Ctrl-C lands inside a step whatever a step costs on this machine, and
# only that second Ctrl-C can end the process (the step it interrupts never finishes).
HELD_PLUGIN = """
import os
import time
from pathlib import Path

from pydantic import Field
from torch import nn

from lstmctl.models.base import SequenceModel
from lstmctl.registry import register_model
from lstmctl.schema import Strict


class HeldParams(Strict):
    hidden_size: int = Field(4, ge=1, description="units")


class HeldLSTM(nn.LSTM):
    def forward(self, x, state=None):
        hold = os.environ.get("LSTMCTL_TEST_HOLD")
        if hold and self.training:
            Path(hold, "in-step").write_text(str(os.getpid()))
            while True:
                time.sleep(0.01)
        return super().forward(x, state)


@register_model("held_lstm", HeldParams)
def build_held(p, input_size, output_size, task):
    return SequenceModel(HeldLSTM(input_size, p.hidden_size, batch_first=True), p.hidden_size, output_size, task, False)
"""


def test_second_ctrl_c_quits_at_once_and_leaves_whole_files(cli, tmp_path, runs_dir):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "held_lstm_plugin.py").write_text(HELD_PLUGIN)
    hold = tmp_path / "hold"
    hold.mkdir()
    held = {**EXACT, "plugins": ["held_lstm_plugin"], "plugin_dir": str(tmp_path / "plugin"),
            "model": {"name": "held_lstm", "hidden_size": 4}}
    proc = popen("train", write_cfg(tmp_path / "held.yaml", base=held), env={"LSTMCTL_TEST_HOLD": str(hold)})
    try:
        wait_until(lambda: (hold / "in-step").exists(), proc)  # inside the first training step
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping after this step" in stderr_so_far(proc), proc)
        proc.send_signal(signal.SIGINT)
        rc, out, err = finish(proc, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"a second SIGINT did not end a process held inside a step: {stderr_so_far(proc)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130, err
    assert "SIGINT again: quitting now" in err and "Traceback" not in err
    run = only_run(runs_dir)
    assert run_info(run)["status"] == "interrupted"
    for f in (run / "checkpoints").glob("*.pt"):  # whatever carries a real name is complete
        ckpt.load(f)
    for f in (run / "checkpoints").glob(".*.tmp"):  # a write cut short carries the writer's pid
        assert f.name.endswith(f".{proc.pid}.tmp")
    # and the run goes on from what was saved (here: from the start); this process holds no step
    cli("resume", run.name, "--epochs", "1", "--quiet")
    assert run_info(run)["status"] == "completed" and load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert not list((run / "checkpoints").glob(".*.tmp"))  # resume cleans up after killed writers
