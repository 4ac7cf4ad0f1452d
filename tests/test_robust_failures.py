"""Runs that cannot finish: NaN/inf loss, out of memory, a failing disk, a missing device. Each ends
with one line, the right exit code, status `failed` and the last good checkpoint kept."""

from __future__ import annotations

import errno
import math

import pytest
import torch
import typer

from lstmctl import errors
from lstmctl.cli import handled
from lstmctl.train import loop
from tests.robust_util import load_ckpt, metrics_without_seconds, only_run, run_info, write_cfg


def _error_line(output: str) -> str:
    lines = [l for l in output.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_nan_loss_stops_naming_epoch_and_step(cli, tmp_path, runs_dir):
    # plain SGD at lr 100 overflows the head within two epochs
    cfg = write_cfg(tmp_path / "nan.yaml", epochs=50, optimizer="sgd", lr=100)
    r = cli("train", cfg, ok=False)
    assert r.exit_code == 1, r.output
    line = _error_line(r.output)
    assert "the training loss became" in line and ("inf" in line or "nan" in line)
    assert "at epoch 2, step" in line
    assert "lower train.lr or set train.grad_clip" in line
    assert "its last good checkpoint (epoch 1) is kept" in line
    run = only_run(runs_dir)
    info = run_info(run)
    assert info["status"] == "failed" and "epoch 2, step" in info["error"]
    last = load_ckpt(run / "checkpoints" / "last.pt")  # the last good checkpoint: epoch 1
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    best = load_ckpt(run / "checkpoints" / "best.pt")
    assert best["epoch"] == 1 and math.isfinite(best["best"]["value"])
    assert all(math.isfinite(float(row["train_loss"])) for row in metrics_without_seconds(run))
    assert info["best"]["value"] is not None and math.isfinite(info["best"]["value"])


def test_non_finite_loss_at_the_first_step_points_at_the_data(cli, tmp_path, runs_dir, monkeypatch):
    real = loop.make_criterion
    monkeypatch.setattr(loop, "make_criterion", lambda name, task: (lambda out, y: real(name, task)(out, y) * float("nan")))
    r = cli("train", write_cfg(tmp_path / "c.yaml", epochs=3), ok=False)
    assert r.exit_code == 1
    line = _error_line(r.output)
    assert "became nan at epoch 1, step 1" in line and "check the data for NaN or infinite values" in line
    assert "no checkpoint had been saved yet" in line
    assert run_info(only_run(runs_dir))["status"] == "failed"


def test_non_finite_never_becomes_best(cli, tmp_path, runs_dir, monkeypatch):
    """A validation loss that turns non-finite stops the run; best stays the last finite one."""
    real = loop.evaluate_loss
    calls = {"n": 0}

    def evaluate(*a, **k):
        calls["n"] += 1
        return float("nan") if calls["n"] == 3 else real(*a, **k)

    monkeypatch.setattr(loop, "evaluate_loss", evaluate)
    r = cli("train", write_cfg(tmp_path / "c.yaml", epochs=5), ok=False)
    assert r.exit_code == 1
    assert "the validation loss became nan at epoch 3" in _error_line(r.output)
    run = only_run(runs_dir)
    best = load_ckpt(run / "checkpoints" / "best.pt")
    assert best["epoch"] in (1, 2) and math.isfinite(best["best"]["value"])
    assert load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 2


def test_out_of_memory_fails_with_the_batch_size(cli, tmp_path, runs_dir, monkeypatch):
    real = loop.make_criterion

    def criterion_that_runs_out(name, task):
        crit = real(name, task)
        calls = {"n": 0}

        def wrapped(out, y):
            calls["n"] += 1
            if calls["n"] == 17:  # epoch 3, step 3
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return crit(out, y)

        return wrapped

    monkeypatch.setattr(loop, "make_criterion", criterion_that_runs_out)
    r = cli("train", write_cfg(tmp_path / "c.yaml", epochs=5), ok=False)
    assert r.exit_code == 1, r.output
    line = _error_line(r.output)
    assert "out of memory" in line and "at epoch 3 with batch_size 3" in line and "lower train.batch_size" in line
    assert "its last good checkpoint (epoch 2) is kept" in line
    run = only_run(runs_dir)
    assert run_info(run)["status"] == "failed"
    assert load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 2  # the last checkpoint is kept


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed")],
    ids=["oserror", "torch-writer"],
)
def test_failing_checkpoint_write_keeps_the_previous_one(cli, tmp_path, runs_dir, monkeypatch, failure):
    real = torch.save
    writes = {"n": 0}

    def save(obj, f, *a, **k):
        writes["n"] += 1
        if writes["n"] == 5:  # epochs 1-2 wrote best+last; the third epoch's first write fails
            f.write(b"partial")
            raise failure
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    r = cli("train", write_cfg(tmp_path / "c.yaml", epochs=5), ok=False)
    monkeypatch.setattr(torch, "save", real)
    assert r.exit_code == 1, r.output
    line = _error_line(r.output)
    assert "could not write checkpoint" in line and "the previous checkpoint is kept" in line
    assert ("No space left on device" in line) if isinstance(failure, OSError) else ("file write failed" in line)
    run = only_run(runs_dir)
    assert run_info(run)["status"] == "failed"
    assert load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 2
    assert load_ckpt(run / "checkpoints" / "best.pt")["epoch"] <= 2
    assert not list((run / "checkpoints").glob(".*.tmp"))
    # and the run can be continued once the disk is fine again
    cli("resume", run.name, "--quiet")
    assert run_info(run)["status"] == "completed" and load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 5


def test_failing_run_json_write_is_a_failed_run_not_a_traceback(cli, tmp_path, runs_dir, monkeypatch):
    from lstmctl import runs

    real = runs.write_text_atomic
    count = {"n": 0}

    def flaky(path, text):
        if path.name == "run.json" and '"epochs_done": 2' in text:
            count["n"] += 1
            raise OSError(errno.EROFS, "Read-only file system")
        return real(path, text)

    monkeypatch.setattr(runs, "write_text_atomic", flaky)
    r = cli("train", write_cfg(tmp_path / "c.yaml", epochs=4), ok=False)
    assert r.exit_code == 1, r.output
    assert "Read-only file system" in _error_line(r.output) and count["n"] >= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(cli, write_config, runs_dir):
    r = cli("train", write_config({"device": "cuda"}), ok=False)
    assert r.exit_code == 2
    line = _error_line(r.output)
    assert "device 'cuda' is not available here (CUDA is not available)" in line and "auto or cpu" in line
    assert not runs_dir.exists() or not any(runs_dir.iterdir())  # no run directory for a run that never started


@pytest.mark.parametrize(
    "exc, code",
    [
        (errors.UserError("x"), 2),
        (errors.ConfigError("x"), 2),
        (errors.RunFailed("x"), 1),
        (errors.Interrupted("x", 2), 130),
        (errors.Interrupted("x", 15), 143),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes(exc, code):
    """The documented table: 0 ok, 1 failed run, 2 user error, 130/143 interrupted."""
    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USER, errors.EXIT_SIGINT, errors.EXIT_SIGTERM) == (0, 1, 2, 130, 143)
    with pytest.raises(typer.Exit) as e:
        with handled():
            raise exc
    assert e.value.exit_code == code

