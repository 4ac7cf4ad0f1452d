"""train -> eval -> plot through the real command line, and the run directory it leaves."""

import csv
import json

import torch
import yaml

from lstmctl import config
from lstmctl import checkpoint as ckpt
from tests.conftest import CONFIGS, run_lstmctl

PNG = b"\x89PNG\r\n\x1a\n"


def only_run(runs_dir):
    runs = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_train_eval_plot_leave_a_complete_run(cli, write_config, runs_dir):
    cfg_path = write_config({"train.val_fraction": 0.25, "train.epochs": 4})
    r = cli("train", cfg_path, "--set", "train.lr=0.02", "--quiet")
    run = only_run(runs_dir)
    assert f"run id:  {run.name}" in r.output and f"run dir: {run}" in r.output
    assert run.name.endswith("-tiny")

    # config.yaml: resolved, with defaults and the override, and loadable on its own
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["lr"] == 0.02 and saved["train"]["optimizer"] == "adam"
    assert saved["data"]["train_fraction"] == 0.5
    assert config.load(run / "config.yaml").train.lr == 0.02

    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 4
    for key in ("created", "started", "ended", "device", "seed", "torch_version", "lstmctl_version", "params", "final"):
        assert info[key] is not None, key
    assert info["params"] == sum(p.numel() for p in torch.nn.LSTM(1, 4).parameters()) + 4 + 1
    assert info["overrides"] == ["train.lr=0.02"]

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_mae", "val_rmse", "val_r2", "lr", "seconds"}
    assert all(float(r["val_loss"]) > 0 and float(r["lr"]) == 0.02 for r in rows)

    last = ckpt.load(run / "checkpoints" / "last.pt")
    best = ckpt.load(run / "checkpoints" / "best.pt")
    assert last["epoch"] == 4 and {"model", "optimizer", "rng", "config"} <= set(last)
    best_epoch = min(rows, key=lambda r: float(r["val_loss"]))["epoch"]
    assert best["epoch"] == int(best_epoch)
    assert not list((run / "checkpoints").glob("*.tmp"))

    r = cli("eval", "latest", "--json")
    result = json.loads(r.stdout)
    assert result["split"] == "test" and result["checkpoint"] == "best"
    assert set(result["metrics"]) >= {"mse", "rmse", "mae"}
    assert abs(result["metrics"]["rmse"] ** 2 - result["metrics"]["mse"]) < 1e-9
    assert json.loads((run / "eval.json").read_text()) == result

    r = cli("eval", run.name[:10], "--checkpoint", "last", "--split", "val")
    assert "mse" in r.output
    assert json.loads((run / "eval.json").read_text())["split"] == "val"

    r = cli("plot", "latest")
    paths = r.stdout.split()
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["loss.png", "predictions.png"]
    for p in paths:
        data = open(p, "rb").read()
        assert data.startswith(PNG) and len(data) > 10_000


def test_runs_dir_option_and_env(cli, write_config, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    cli("train", write_config(), "--runs-dir", other, "--quiet")
    assert len(list(other.iterdir())) == 1
    monkeypatch.setenv("LSTMCTL_RUNS_DIR", str(other))
    assert "mse" in cli("eval", "latest").output


def test_seeded_runs_are_identical(cli, write_config, runs_dir):
    path = write_config({"train.epochs": 5, "model.dropout": 0.0, "data.noise": 0.05})
    cli("train", path, "--quiet")
    cli("train", path, "--quiet")
    a, b = sorted(p for p in runs_dir.iterdir())
    assert a.name != b.name  # two runs in the same second still get two ids

    def table(run):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(run / "metrics.csv"))]

    assert table(a) == table(b)
    wa = ckpt.load(a / "checkpoints/last.pt")["model"]
    wb = ckpt.load(b / "checkpoints/last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    cli("train", path, "--quiet", "--set", "seed=1")
    c = max(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert table(c) != table(a)


def test_checkpoints_are_throttled(cli, write_config, runs_dir, monkeypatch):
    """With a long interval, a 30-epoch run writes last.pt once (at the end), not 30 times."""
    writes = []
    real = ckpt.save
    monkeypatch.setattr(ckpt, "save", lambda obj, path, **kw: (writes.append(path.name), real(obj, path, **kw)))
    cli("train", write_config({"train.epochs": 30, "train.checkpoint_every_s": 3600}), "--quiet")
    assert writes.count("last.pt") == 1
    writes.clear()
    cli("train", write_config({"train.epochs": 5, "train.checkpoint_every_s": 0}), "--quiet")
    assert writes.count("last.pt") == 5


def test_atomic_checkpoint_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save({"epoch": 1, "model": {"w": torch.ones(3)}}, path)

    def broken(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    try:
        ckpt.save({"epoch": 2, "model": {"w": torch.zeros(3)}}, path)
    except Exception as e:  # RunFailed
        assert "No space left on device" in str(e) and "previous checkpoint is kept" in str(e)
    else:
        raise AssertionError("save should have failed")
    monkeypatch.undo()
    assert ckpt.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_shipped_config_through_python_m(tmp_path):
    """`python -m lstmctl` runs the shipped sin2cos config (shortened) as a real process."""
    r = run_lstmctl("train", CONFIGS / "sin2cos.yaml", "--set", "train.epochs=3", "--runs-dir", tmp_path / "r")
    assert r.returncode == 0, r.stderr
    assert "run dir:" in r.stdout
    assert "epoch 3/3" in r.stderr  # not a TTY: plain progress lines
