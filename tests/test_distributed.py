"""DDP through torchrun on CPU (gloo, loopback): two real processes launched by `lstmctl train --nproc 2`.

One module-scoped pair of runs feeds every check, because each launch costs torchrun's start-up plus two
torch imports (several seconds on a small machine).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY, run_lstmctl
from lstmctl.train import distributed

CFG = {
    **TINY,
    "name": "ddp",
    "data": {"name": "sine_cosine", "points": 160, "seq_len": 10},  # 8 training sequences, 2 held out for val
    "model": {"name": "lstm", "hidden_size": 8},
    "train": {"epochs": 12, "batch_size": 2, "lr": 0.02, "val_fraction": 0.25, "checkpoint_every_s": 0,
              "monitor": "val_r2"},  # a max-mode monitor: best.pt follows rank 0's validation metrics on every rank
}


def _launch(tmp: Path, tag: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    cfg = tmp / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(CFG, sort_keys=False))
    runs, dump = tmp / f"runs-{tag}", tmp / f"dump-{tag}"
    env = {"LSTMCTL_RUNS_DIR": str(runs), distributed.DUMP_ENV: str(dump), "OMP_NUM_THREADS": "1"}
    proc = run_lstmctl("train", cfg, "--nproc", "2", "--json", env=env, timeout=120, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, runs, dump


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return [_launch(tmp, tag) for tag in ("a", "b")]


def _only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def test_ranks_end_with_identical_weights_equal_to_the_checkpoint(two_runs):
    proc, runs, dump = two_runs[0]
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    last = torch.load(_only_run(runs) / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert set(r0) == set(r1) == set(last) and r0  # the unwrapped model's keys (no "module." prefix)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.equal(r0[k], last[k]), k


def test_run_dir_is_whole_written_once_and_loss_falls(two_runs):
    proc, runs, _ = two_runs[0]
    summary = json.loads(proc.stdout)  # rank 0 alone printed: stdout is one JSON document
    run = _only_run(runs)
    assert summary["run"] == run.name
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["world_size"] == 2 and info["epochs_done"] == 12
    for name in ("config.yaml", "data_state.json", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 13  # header + 12 epochs: one writer, not two
    rows = [dict(zip(lines[0].split(","), ln.split(","))) for ln in lines[1:]]
    assert float(rows[-1]["train_loss"]) < 0.7 * float(rows[0]["train_loss"])
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert not list(run.rglob(".*.tmp"))


def test_every_rank_recorded_and_used_rank0s_validation_metrics(two_runs):
    """Validation runs once, on rank 0; every rank receives its numbers and decides on them (best epoch)."""
    _, runs, dump = two_runs[0]
    seen = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert seen[0] == seen[1]  # the same validation values each epoch, and the same summary (best, stop reason)
    vals = seen[0]["validations"]
    assert len(vals) == 12 and list(vals[0]) == ["val_loss", "val_mae", "val_rmse", "val_r2"]
    run = _only_run(runs)
    lines = (run / "metrics.csv").read_text().splitlines()
    rows = [dict(zip(lines[0].split(","), ln.split(","))) for ln in lines[1:]]
    for row, v in zip(rows, vals):  # what rank 0 wrote is what every rank used
        assert {k: float(row[k]) for k in v} == v
    info = json.loads((run / "run.json").read_text())
    assert seen[0]["summary"]["best"] == seen[1]["summary"]["best"] == info["best"]
    assert info["best"]["monitor"] == "val_r2" and info["best"]["mode"] == "max"
    r2 = [v["val_r2"] for v in vals]
    assert info["best"]["epoch"] == r2.index(max(r2)) + 1


def test_single_process_eval_loads_the_ddp_checkpoint(two_runs, cli):
    _, runs, _ = two_runs[0]
    run = _only_run(runs)
    r = cli("eval", run.name, "--json", "--runs-dir", runs)  # this test process: no process group
    result = json.loads(r.stdout)
    assert result["metrics"]["mse"] < 1.0 and (run / "eval.json").is_file()


def test_fixed_seed_two_process_run_is_reproducible(two_runs):
    def table(runs):
        lines = (_only_run(runs) / "metrics.csv").read_text().splitlines()
        return [ln.rsplit(",", 1)[0] for ln in lines]  # all columns but seconds

    (_, runs_a, dump_a), (_, runs_b, dump_b) = two_runs
    assert table(runs_a) == table(runs_b)
    a = torch.load(dump_a / "rank0.pt", weights_only=True)
    b = torch.load(dump_b / "rank0.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stateful_training_is_refused_before_launching(write_config, cli):
    r = cli("train", write_config({"train.stateful": True}), "--nproc", "2", ok=False)
    assert r.exit_code == 2
    assert "train.stateful" in r.output and "DDP" in r.output and "Traceback" not in r.output


def test_nproc_must_be_positive_and_not_nested(write_config, cli, monkeypatch):
    path = write_config()
    r = cli("train", path, "--nproc", "0", ok=False)
    assert r.exit_code == 2 and "--nproc must be at least 1" in r.output
    for k, v in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(k, v)
    r = cli("train", path, "--nproc", "2", ok=False)
    assert r.exit_code == 2 and "already runs under torchrun" in r.output


def test_outside_torchrun_there_is_no_process_group(monkeypatch):
    from lstmctl import config

    for k in distributed.ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    assert distributed.under_torchrun() is False
    assert distributed.from_env(config.validate(TINY)) is None
    assert not torch.distributed.is_initialized()


# ---------------------------------------------------------------- the other levers: compile, precision


def test_compile_is_wired_into_the_trainer(write_config, cli, runs_dir, monkeypatch):
    """train.compile hands the model to torch.compile (stubbed: inductor takes minutes on a small CPU)."""
    seen = []

    def fake_compile(module, *a, **kw):
        seen.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    cli("train", write_config({"train.compile": True, "train.epochs": 1}), "-q")
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    info = json.loads((run / "run.json").read_text())
    assert len(seen) == 1 and isinstance(seen[0], torch.nn.Module)
    assert info["compile"] is True and info["compile_s"] >= 0 and info["status"] == "completed"


def test_mixed_precision_off_cuda_falls_back_to_fp32_with_a_warning(write_config, cli, runs_dir):
    r = cli("train", write_config({"train.precision": "bf16", "train.epochs": 1}), "-q")
    assert "train.precision=bf16 needs CUDA" in r.output
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert json.loads((run / "run.json").read_text())["precision"] == "fp32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast and GradScaler run on CUDA only")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_trains(write_config, cli, runs_dir, precision):
    cli("train", write_config({"train.precision": precision, "device": "cuda", "train.epochs": 2}), "-q")
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    info = json.loads((run / "run.json").read_text())
    assert info["precision"] == precision and info["status"] == "completed"
