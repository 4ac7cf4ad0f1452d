"""`lstmctl resume`: continuing a run is exact on CPU; --from best --new-run starts a new run from its weights."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch

from lstmctl.train import loop
from tests.robust_util import (
    EXACT,
    assert_same_run,
    assert_same_weights,
    load_ckpt,
    metrics_without_seconds,
    only_run,
    run_info,
    write_cfg,
)


@pytest.fixture
def reference(cli, tmp_path):
    """The uninterrupted 8-epoch run everything below must reproduce."""
    ref_dir = tmp_path / "ref"
    cli("train", write_cfg(tmp_path / "exact.yaml"), "--quiet", "--runs-dir", ref_dir)
    return only_run(ref_dir)


def test_resume_to_more_epochs_is_exact(cli, tmp_path, runs_dir, reference, monkeypatch):
    cfg = write_cfg(tmp_path / "exact.yaml")
    cli("train", cfg, "--quiet", "--set", "train.epochs=3")
    run = only_run(runs_dir)
    assert run_info(run)["status"] == "completed" and load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 3

    seen = []  # the status while the resumed run trains
    real = loop.Trainer._run_epoch
    monkeypatch.setattr(loop.Trainer, "_run_epoch", lambda self, e: (seen.append(run_info(run)["status"]), real(self, e))[1])
    r = cli("resume", run.name, "--epochs", "8", "--runs-dir", runs_dir)
    assert "finished" in r.output and run.name in r.output
    assert seen and set(seen) == {"running"}
    info = run_info(run)
    assert info["status"] == "completed" and info["epochs_done"] == 8 and info["epochs"] == 8
    assert info["resumes"][-1]["from_epoch"] == 3 and info["resumes"][-1]["checkpoint"] == "last.pt"
    assert_same_run(run, reference)

    again = cli("resume", run.name)
    assert "already complete: 8 of 8 epochs" in again.output
    assert len(metrics_without_seconds(run)) == 8


def test_resume_mid_epoch_is_exact(cli, tmp_path, runs_dir, reference, monkeypatch):
    """SIGINT at a fixed step (delivered by the loss function itself): saved mid-epoch, resumed exactly."""
    real = loop.make_criterion
    calls = {"n": 0}

    def criterion_that_interrupts(name, task):
        crit = real(name, task)

        def wrapped(out, y):
            calls["n"] += 1
            if calls["n"] == 17:  # epoch 3, step 3 of 6 (each epoch: 6 steps + 1 validation pass)
                os.kill(os.getpid(), signal.SIGINT)
            return crit(out, y)

        return wrapped

    with monkeypatch.context() as m:
        m.setattr(loop, "make_criterion", criterion_that_interrupts)
        r = cli("train", write_cfg(tmp_path / "exact.yaml"), "--quiet", ok=False)
    assert r.exit_code == 130, r.output
    run = only_run(runs_dir)
    assert f"interrupted in epoch 3 after step 3 of 6; state saved. Continue with: lstmctl resume {run.name}" in r.output
    state = load_ckpt(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["step_in_epoch"] > 0  # stopped inside epoch 3
    assert run_info(run)["status"] == "interrupted"

    cli("resume", run.name, "--quiet")
    assert run_info(run)["status"] == "completed"
    assert_same_run(run, reference)


def test_resume_a_run_killed_before_its_first_checkpoint_starts_over(cli, tmp_path, runs_dir, reference):
    cli("train", write_cfg(tmp_path / "exact.yaml"), "--quiet", "--set", "train.epochs=3")
    run = only_run(runs_dir)
    for f in (run / "checkpoints").iterdir():
        f.unlink()
    r = cli("resume", run.name, "--epochs", "8", "--quiet")
    assert "starting it again from epoch 0" in r.output
    assert_same_run(run, reference)


def test_resume_defaults_to_the_runs_own_target(cli, tmp_path, runs_dir):
    cli("train", write_cfg(tmp_path / "exact.yaml", epochs=2), "--quiet")
    run = only_run(runs_dir)
    cli("resume", run.name, "--epochs", "3", "--quiet")
    # the run's target is now 3 epochs: a plain resume has nothing to do
    assert "already complete: 3 of 3" in cli("resume", run.name).output
    assert run_info(run)["epochs_done"] == 3


def test_new_run_from_best_weights(cli, tmp_path, runs_dir, monkeypatch):
    cli("train", write_cfg(tmp_path / "exact.yaml", epochs=4), "--quiet")
    parent = only_run(runs_dir)
    parent_metrics = metrics_without_seconds(parent)
    best = load_ckpt(parent / "checkpoints" / "best.pt")

    start = {}
    real_fit = loop.Trainer.fit

    def fit(self):
        start["model"] = {k: v.clone() for k, v in self.model.state_dict().items()}
        start["opt_state"] = len(self.opt.state_dict()["state"])
        start["epoch"] = self.epoch
        return real_fit(self)

    monkeypatch.setattr(loop.Trainer, "fit", fit)
    r = cli("resume", parent.name, "--from", "best", "--new-run", "--epochs", "2", "--set", "train.lr=0.002")
    new = only_run(runs_dir)
    assert new != parent and new.name in r.output
    for k, v in best["model"].items():
        assert torch.equal(start["model"][k], v)  # starts from the best weights ...
    assert start["opt_state"] == 0 and start["epoch"] == 0  # ... with a fresh optimizer, from epoch 0
    info = run_info(new)
    assert info["status"] == "completed" and info["epochs_done"] == 2
    assert info["parent"] == {"run": parent.name, "checkpoint": "best.pt", "epoch": best["epoch"]}
    saved = (new / "config.yaml").read_text()
    assert "epochs: 2" in saved and "lr: 0.002" in saved  # the parent's config, with --set applied
    assert info["overrides"][-1] == "train.lr=0.002"
    assert metrics_without_seconds(parent) == parent_metrics  # the parent is untouched


def test_resume_mistakes_are_one_line(cli, tmp_path, runs_dir, write_config):
    cli("train", write_config({"train.epochs": 2}), "--quiet")
    run = only_run(runs_dir)

    def err(*args, needle):
        r = cli(*args, ok=False)
        assert r.exit_code == 2, r.output
        lines = [l for l in r.output.splitlines() if l.strip()]
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.output, r.output

    err("resume", run.name, "--from", "best", needle="add --new-run")
    err("resume", run.name, "--from", "middle", needle="--from must be last or best")
    err("resume", "nope", needle="no run 'nope'")
    err("resume", run.name, "--set", "train.lr=0.1", needle="--set only works with --new-run")
    err("resume", run.name, "--new-run", "--set", "model.hidden_size=9", needle="does not fit the model")
    r = cli("resume", run.name, "--epochs", "0", ok=False)  # Typer's own usage error
    assert r.exit_code == 2 and "--epochs" in r.output and "Traceback" not in r.output

    cli("train", write_config({"train.epochs": 2, "train.scheduler": {"name": "onecycle"}}), "--quiet")
    err("resume", only_run(runs_dir).name, "--epochs", "4", needle="onecycle schedule")


def test_resume_to_fewer_epochs_leaves_an_interrupted_run_alone(cli, write_config, runs_dir):
    """Asking for fewer epochs than done changes nothing: the run stays interrupted and resumable."""
    import json

    cli("train", write_config({"train.epochs": 4}), "--quiet")
    run = next(runs_dir.iterdir())
    info = json.loads((run / "run.json").read_text())
    info.update(status="interrupted", epochs=10)  # as if stopped by Ctrl-C on the way to 10
    (run / "run.json").write_text(json.dumps(info))
    r = cli("resume", run.name, "--epochs", "2")
    assert "already complete" in r.output or "already" in r.output
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    cli("resume", run.name, "--quiet")
    assert json.loads((run / "run.json").read_text())["epochs_done"] == 10


# ---------------------------------------------------------------- the monitor's state


MAX_MODE = {  # a max-mode monitor validated every 3rd epoch (and the last), a plateau schedule in max mode
    **EXACT,
    "name": "maxmode",
    "train": {**EXACT["train"], "monitor": "val_r2", "val_every": 3, "early_stopping": {"patience": 50},
              "scheduler": {"name": "plateau", "patience": 0, "factor": 0.5}},
}


def _same_best(a, b) -> None:
    assert run_info(a)["best"] == run_info(b)["best"]
    ba, bb = load_ckpt(a / "checkpoints" / "best.pt"), load_ckpt(b / "checkpoints" / "best.pt")
    assert ba["epoch"] == bb["epoch"] and ba["best"] == bb["best"]
    assert all(torch.equal(v, bb["model"][k]) for k, v in ba["model"].items())


def test_resume_with_a_max_mode_monitor_and_val_every_is_exact(cli, tmp_path, runs_dir, monkeypatch):
    cfg = write_cfg(tmp_path / "max.yaml", MAX_MODE)
    cli("train", cfg, "--quiet", "--runs-dir", tmp_path / "ref")
    reference = only_run(tmp_path / "ref")
    rows = metrics_without_seconds(reference)
    assert [r["epoch"] for r in rows if r["val_r2"]] == ["3", "6", "8"] and not rows[0]["val_loss"]
    best = run_info(reference)["best"]
    assert best["monitor"] == "val_r2" and best["mode"] == "max" and best["epoch"] in (3, 6, 8)
    state = load_ckpt(reference / "checkpoints" / "last.pt")
    assert state["early_stopping"]["mode"] == "max" and state["scheduler"]["mode"] == "max"

    # stopped at an epoch's end (6: validated in both runs), then continued to 8
    cli("train", cfg, "--quiet", "--set", "train.epochs=6")
    run = only_run(runs_dir)
    cli("resume", run.name, "--epochs", "8", "--quiet")
    assert_same_run(run, reference)
    _same_best(run, reference)

    # interrupted inside epoch 4 (SIGINT from the loss of its 2nd training step), then resumed
    real = loop.make_criterion
    steps = {"n": 0}

    def criterion_that_interrupts(name, task):
        crit = real(name, task)

        def wrapped(out, y):
            if torch.is_grad_enabled():  # training steps only: validation runs without gradients
                steps["n"] += 1
                if steps["n"] == 3 * 6 + 2:
                    os.kill(os.getpid(), signal.SIGINT)
            return crit(out, y)

        return wrapped

    with monkeypatch.context() as m:
        m.setattr(loop, "make_criterion", criterion_that_interrupts)
        r = cli("train", cfg, "--quiet", "--runs-dir", tmp_path / "sig", ok=False)
    assert r.exit_code == 130, r.output
    run = only_run(tmp_path / "sig")
    state = load_ckpt(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 3 and state["step_in_epoch"] == 2
    cli("resume", run.name, "--quiet", "--runs-dir", tmp_path / "sig")
    assert_same_run(run, reference)
    _same_best(run, reference)


def test_a_checkpoint_from_before_monitor_modes_resumes(cli, tmp_path, runs_dir, reference):
    """A run written before val_<metric> columns and modes: last.pt's best and early-stopping state have no
    mode, run.json's best none, metrics.csv no val_* columns. It resumes (a loss, in min mode) exactly."""
    cli("train", write_cfg(tmp_path / "exact.yaml"), "--quiet", "--set", "train.epochs=3")
    run = only_run(runs_dir)
    last = run / "checkpoints" / "last.pt"
    state = load_ckpt(last)
    state["best"].pop("mode")
    state["early_stopping"] = {"best": state["early_stopping"]["best"], "bad_epochs": state["early_stopping"]["bad_epochs"]}
    torch.save(state, last)
    info = run_info(run)
    info["best"].pop("mode")
    (run / "run.json").write_text(json.dumps(info))
    old = [{k: v for k, v in r.items() if k in ("epoch", "train_loss", "val_loss", "lr", "seconds")}
           for r in csv.DictReader(open(run / "metrics.csv", newline=""))]
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "train_loss", "val_loss", "lr", "seconds"])
        w.writeheader()
        w.writerows(old)

    cli("resume", run.name, "--epochs", "8", "--quiet")
    assert_same_weights(last, reference / "checkpoints" / "last.pt")
    got, want = metrics_without_seconds(run), metrics_without_seconds(reference)
    assert got[3:] == want[3:]
    assert all(not r["val_mae"] for r in got[:3])  # the old rows: empty val_<metric> cells
    assert [{k: r[k] for k in ("epoch", "train_loss", "val_loss", "lr")} for r in got[:3]] == \
        [{k: r[k] for k in ("epoch", "train_loss", "val_loss", "lr")} for r in want[:3]]
    assert run_info(run)["best"] == run_info(reference)["best"] and run_info(run)["best"]["mode"] == "min"
