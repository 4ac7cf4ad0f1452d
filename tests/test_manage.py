"""runs, show, compare, predict, sweep, config show/validate/schema, schedules, the Python API."""

import csv
import json

import numpy as np
import pytest
import yaml

from lstmctl import load_run
from tests.conftest import CONFIGS

PNG = b"\x89PNG\r\n\x1a\n"


def train(cli, write_config, *sets, update=None):
    cli("train", write_config(update), "--quiet", *[a for s in sets for a in ("--set", s)])


def test_runs_lists_newest_first_with_filters_and_damage(cli, write_config, runs_dir):
    train(cli, write_config, "name=alpha")
    train(cli, write_config, "name=beta", "train.val_fraction=0.25")
    cli("eval", "latest")
    damaged = runs_dir / "20000101-000000-broken"
    damaged.mkdir()
    (runs_dir / "20000101-000001-garbled").mkdir()
    (runs_dir / "20000101-000001-garbled" / "run.json").write_text("{not json")

    rows = json.loads(cli("runs", "--json").stdout)
    good = [r for r in rows if r["status"] != "damaged"]
    assert [r["name"] for r in good] == ["beta", "alpha"]  # newest first
    beta = good[0]
    assert beta["status"] == "completed" and beta["epochs_done"] == 3 and beta["best_monitor"] == "val_loss"
    assert beta["metric"] == "test mse" and beta["metric_value"] > 0
    assert good[1]["metric"] is None  # alpha was never evaluated
    bad = {r["id"]: r for r in rows if r["status"] == "damaged"}
    assert set(bad) == {"20000101-000000-broken", "20000101-000001-garbled"}
    assert "no run.json" in bad["20000101-000000-broken"]["problem"]

    assert [r["name"] for r in json.loads(cli("runs", "--json", "--name", "alp").stdout)] == ["alpha"]
    assert len(json.loads(cli("runs", "--json", "--status", "damaged").stdout)) == 2
    assert len(json.loads(cli("runs", "--json", "--limit", "1").stdout)) == 1
    table = cli("runs").stdout
    assert "beta" in table and "damaged" in table and "completed" in table


def test_show(cli, write_config):
    train(cli, write_config, "train.val_fraction=0.25")
    cli("eval", "latest")
    out = cli("show", "latest").stdout
    assert "hidden_size: 4" in out and "completed" in out and "val_loss" in out and "eval (test, best)" in out
    data = json.loads(cli("show", "latest", "--json").stdout)
    assert data["config"]["model"]["hidden_size"] == 4
    assert data["metrics_summary"]["epochs"] == 3
    s = data["metrics_summary"]["train_loss"]
    assert s["min"] <= s["first"] and s["min"] <= s["last"]
    assert "checkpoints/best.pt" in data["files"] and "eval.json" in data["files"]


def test_compare_lists_only_differences(cli, write_config, tmp_path):
    train(cli, write_config, "train.lr=0.01")
    train(cli, write_config, "train.lr=0.03", "model.hidden_size=6")
    ids = [r["id"] for r in json.loads(cli("runs", "--json").stdout)]
    out = tmp_path / "cmp" / "loss.png"
    result = json.loads(cli("compare", *ids, "--out", out, "--json").stdout)
    assert set(result["differences"]) == {"train.lr", "model.hidden_size"}
    assert result["differences"]["train.lr"] == [0.03, 0.01]
    assert out.read_bytes().startswith(PNG)
    cli("compare", *ids)  # default: compare.png in the current directory
    assert (tmp_path / "compare.png").read_bytes().startswith(PNG)
    r = cli("compare", ids[0], ok=False)
    assert r.exit_code == 2 and "at least two runs" in r.output


def test_predict_from_npy(cli, write_config, tmp_path):
    train(cli, write_config)
    x = np.sin(np.linspace(0, 3, 30, dtype=np.float32)).reshape(3, 10, 1)
    np.save(tmp_path / "x.npy", x)
    cli("predict", "latest", "--input", tmp_path / "x.npy", "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 30 and set(rows[0]) == {"sequence", "step", "prediction_0"}
    expected = load_run("latest").predict(x)
    assert np.allclose([float(r["prediction_0"]) for r in rows], expected.reshape(-1), atol=1e-6)
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 3), dtype=np.float32))
    r = cli("predict", "latest", "--input", tmp_path / "bad.npy", ok=False)
    assert r.exit_code == 2 and "(sequences, steps, 1)" in r.output
    r = cli("predict", "latest", "--input", tmp_path / "missing.npy", ok=False)
    assert r.exit_code == 2 and "input file not found" in r.output


def test_sweep_runs_every_combination(cli, write_config, tmp_path, runs_dir):
    r = cli("sweep", write_config(), "--grid", "model.hidden_size=3,5", "--grid", "train.lr=0.01,0.02",
            "--set", "train.val_fraction=0.25", "--out-dir", tmp_path, "--json")
    result = json.loads(r.stdout)
    runs = [p for p in runs_dir.iterdir() if not p.name.startswith(".")]  # .studies/ keeps the sweep's study
    assert len(result["results"]) == 4 and len(runs) == 4 and (runs_dir / ".studies" / result["study"]).is_dir()
    bests = [row["best"] for row in result["results"]]
    assert bests == sorted(bests)  # best validation loss first
    assert {(row["model.hidden_size"], row["train.lr"]) for row in result["results"]} == {
        ("3", "0.01"), ("3", "0.02"), ("5", "0.01"), ("5", "0.02")}
    rows = list(csv.DictReader(open(result["csv"])))
    assert [row["run"] for row in rows] == [row["run"] for row in result["results"]]
    for row in result["results"]:
        saved = yaml.safe_load((runs_dir / row["run"] / "config.yaml").read_text())
        assert saved["model"]["hidden_size"] == int(row["model.hidden_size"])
        assert saved["train"]["val_fraction"] == 0.25


def test_sweep_ranks_a_max_mode_monitor_highest_first(cli, write_config, tmp_path):
    r = cli("sweep", write_config(), "--grid", "train.lr=0.001,0.03", "--set", "train.val_fraction=0.25",
            "--set", "train.monitor=val_r2", "--out-dir", tmp_path, "--json")
    rows = json.loads(r.stdout)["results"]
    assert [row["monitor"] for row in rows] == ["val_r2"] * 2 and [row["mode"] for row in rows] == ["max"] * 2
    assert rows[0]["best"] >= rows[1]["best"]  # R² goes up: the highest is the best


def test_sweep_validates_every_combination_before_training(cli, write_config, runs_dir):
    r = cli("sweep", write_config(), "--grid", "model.hidden_size=3,-1", ok=False)
    assert r.exit_code == 2 and "model.hidden_size" in r.output
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
    r = cli("sweep", write_config(), "--grid", "model.hidden_size", ok=False)
    assert r.exit_code == 2 and "KEY=V1,V2" in r.output


def test_config_show_validate_schema(cli, write_config):
    path = write_config()
    shown = yaml.safe_load(cli("config", "show", path, "--set", "train.lr=0.5").stdout)
    assert shown["train"]["lr"] == 0.5 and shown["train"]["optimizer"] == "adam" and shown["data"]["points"] == 40
    assert "is valid" in cli("config", "validate", path).stdout
    r = cli("config", "validate", write_config({"train.epoch": 3}, name="typo.yaml"), ok=False)
    assert r.exit_code == 2 and "did you mean 'epochs'" in r.output
    schema = json.loads(cli("config", "schema").stdout)
    import jsonschema

    jsonschema.validate(yaml.safe_load(path.read_text()), schema)  # an editor would accept the file
    for config_file in sorted(CONFIGS.rglob("*.yaml")):  # and every shipped one
        raw = yaml.safe_load(config_file.read_text())
        if "base" not in raw:
            jsonschema.validate(raw, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**yaml.safe_load(path.read_text()), "model": {"name": "lstm", "hiden_size": 3}}, schema)


@pytest.mark.parametrize("sched", ["step", "cosine", "plateau", "onecycle"])
def test_schedulers_record_the_learning_rate(cli, write_config, runs_dir, sched):
    train(cli, write_config, f"train.scheduler.name={sched}", "train.scheduler.step_size=1", "train.scheduler.patience=0",
          "train.epochs=4", "train.val_fraction=0.25")
    run = next(runs_dir.iterdir())
    lrs = [float(r["lr"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    assert len(lrs) == 4
    if sched == "plateau":
        assert lrs[-1] <= lrs[0]
    else:
        assert len(set(lrs)) > 1, lrs


def test_early_stopping(cli, write_config, runs_dir):
    # lr 0 through sgd would be rejected; a tiny lr keeps the validation loss flat
    train(cli, write_config, "train.epochs=50", "train.lr=1e-9", "train.val_fraction=0.25",
          "train.early_stopping.patience=2", "train.early_stopping.min_delta=0.001")
    info = json.loads((next(runs_dir.iterdir()) / "run.json").read_text())
    assert info["stop_reason"] == "early_stopping"
    assert info["epochs_done"] == 3  # epoch 1 sets the reference, 2 and 3 fail to improve


def test_python_api(cli, write_config):
    train(cli, write_config, "train.val_fraction=0.25")
    run = load_run("latest")
    assert run.config.model["hidden_size"] == 4
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3]
    assert not run.model.training and next(run.model.parameters()).device.type == "cpu"
    y = run.predict(np.zeros((10, 1), dtype=np.float32))
    assert y.shape == (1, 10, 1)
