"""DDP through torchrun on CPU (gloo, loopback): two real processes launched by `lstmctl train --nproc 2`.

One module-scoped pair of runs feeds every check, because each launch costs torchrun's start-up plus two
torch imports (several seconds on a small machine).
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
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


def _test_split() -> tuple[torch.Tensor, torch.Tensor]:
    """CFG's test split written out here, not taken from lstmctl: sin(t) -> cos(t) on 0..12π, the
    second half of the 160 points, in sequences of 10 (no scaling in sine_cosine)."""
    t = torch.linspace(0, 12 * math.pi, CFG["data"]["points"], dtype=torch.float64)[CFG["data"]["points"] // 2 :]
    seq = CFG["data"]["seq_len"]
    return torch.sin(t).float().view(-1, seq, 1), torch.cos(t).float().view(-1, seq, 1)


def _outputs_of(weights: dict, x: torch.Tensor) -> torch.Tensor:
    """The lstm model (nn.LSTM, batch first, then a linear head per step) built here from a state dict."""
    hidden = CFG["model"]["hidden_size"]
    lstm, head = torch.nn.LSTM(1, hidden, batch_first=True), torch.nn.Linear(hidden, 1)
    lstm.load_state_dict({k.removeprefix("backbone."): v for k, v in weights.items() if k.startswith("backbone.")})
    head.load_state_dict({k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")})
    with torch.no_grad():
        return head(lstm(x)[0])


def test_single_process_eval_loads_the_ddp_checkpoint(two_runs, cli, tmp_path):
    """`eval` and `predict` in this test process (no process group) give what best.pt's own weights give."""
    _, runs, _ = two_runs[0]
    run = _only_run(runs)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    x, y = _test_split()
    want = _outputs_of(best, x)

    r = cli("eval", run.name, "--json", "--runs-dir", runs)
    result = json.loads(r.stdout)
    assert result["checkpoint"] == "best" and (run / "eval.json").is_file()
    assert math.isclose(result["metrics"]["mse"], float(((want - y).double() ** 2).mean()), rel_tol=1e-5)

    np.save(tmp_path / "x.npy", x.numpy())
    cli("predict", run.name, "--input", tmp_path / "x.npy", "--output", tmp_path / "p.csv", "--runs-dir", runs)
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]  # sequence, step, prediction
    got = torch.tensor([[float(r[-1])] for r in rows]).view_as(want)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(i, t) for i in range(x.shape[0]) for t in range(x.shape[1])]
    assert (got - want).abs().max() < 1e-6


def test_two_ranks_train_like_one_process_on_their_joint_batches(two_runs, cli, write_config, runs_dir):
    """The ranks see different data and DDP averages their gradients. Rank r takes every 2nd index of
    the epoch's order from r (DistributedSampler's stride), in batches of 2, so step k of the pair
    covers order[4k : 4k+4], the batch of 4 that one process with batch_size 4 takes at step k
    (the same seeded order), and the mean of the two ranks' mean-loss gradients is that batch's
    gradient. So the 2-rank run equals the 1-process run with batch_size 4, to rounding. Ranks that
    both trained on everything (no sharding) take 4 steps of 2 an epoch and end elsewhere; ranks
    whose gradients were not averaged would differ from each other (and from this run)."""
    _, runs, dump = two_runs[0]
    ddp_run = _only_run(runs)
    cli("train", write_config(base=CFG, update={"train.batch_size": 2 * CFG["train"]["batch_size"]}), "--quiet")
    one_run = _only_run(runs_dir)
    one = torch.load(one_run / "checkpoints" / "last.pt", weights_only=True)["model"]
    ddp = torch.load(dump / "rank0.pt", weights_only=True)
    assert one.keys() == ddp.keys()
    for k in one:
        torch.testing.assert_close(ddp[k], one[k], rtol=1e-5, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")

    def table(run):
        with open(run / "metrics.csv", newline="") as f:
            return [{k: float(v) for k, v in row.items() if k not in ("seconds", "lr")} for row in csv.DictReader(f)]

    a, b = table(ddp_run), table(one_run)
    assert len(a) == len(b) == CFG["train"]["epochs"]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert math.isclose(ra[k], rb[k], rel_tol=1e-4, abs_tol=1e-6), (ra["epoch"], k, ra[k], rb[k])


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
    """train.compile hands the model to the real torch.compile and trains with what it returns. The
    backend (inductor takes minutes on a small CPU) is a counting one: Dynamo traces the model as
    usual and every captured graph runs eagerly, counted. A trainer that compiled the model but then
    stepped the uncompiled one would run no graph."""
    real_compile, seen, graphs_run = torch.compile, [], []

    def counting_backend(gm, example_inputs):
        def run(*args):
            graphs_run.append(1)
            return gm.forward(*args)
        return run

    def compile_counting(module, *a, **kw):
        seen.append(module)
        return real_compile(module, backend=counting_backend)

    import torch._dynamo as dynamo

    monkeypatch.setattr(torch, "compile", compile_counting)
    dynamo.reset()
    try:
        # lstm_cell: Dynamo captures graphs around the hand-built layer; around nn.LSTM it captures none
        cli("train", write_config({"train.compile": True, "train.epochs": 2, "model.name": "lstm_cell"}), "-q")
    finally:
        dynamo.reset()
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    info = json.loads((run / "run.json").read_text())
    assert len(seen) == 1 and isinstance(seen[0], torch.nn.Module)
    # at least one captured graph runs per training step, and there is at least one step an epoch
    assert len(graphs_run) >= 2, f"{len(graphs_run)} compiled graph runs in 2 epochs"
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
