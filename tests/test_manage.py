"""runs, show, compare, predict, sweep, config show/validate/schema, schedules, the Python API."""

import csv
import json
import math

import numpy as np
import pytest
import torch
import yaml

from lstmctl import load_run
from tests.conftest import CONFIGS

PNG = b"\x89PNG\r\n\x1a\n"


def forward_best(run_dir, x: np.ndarray, per_step: bool = True) -> np.ndarray:
    """Outputs computed without lstmctl: best.pt's weights loaded (strictly) into a fresh nn.LSTM and
    nn.Linear -- the `lstm` model's layout (backbone.*, head.*) -- and x run through them. A per-step
    head reads every step's output; a per-sequence one the last step's."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    weights = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)["model"]
    hidden, layers = cfg["model"]["hidden_size"], cfg["model"].get("num_layers", 1)
    n_in, n_out = weights["backbone.weight_ih_l0"].shape[1], weights["head.weight"].shape[0]
    lstm = torch.nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True)
    head = torch.nn.Linear(hidden, n_out)
    lstm.load_state_dict({k[len("backbone."):]: v for k, v in weights.items() if k.startswith("backbone.")})
    head.load_state_dict({k[len("head."):]: v for k, v in weights.items() if k.startswith("head.")})
    with torch.no_grad():
        out, _ = lstm(torch.as_tensor(x, dtype=torch.float32))
        return head(out if per_step else out[:, -1]).numpy()


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


def test_predict_from_npy(cli, write_config, tmp_path, runs_dir):
    train(cli, write_config)
    x = np.sin(np.linspace(0, 3, 30, dtype=np.float32)).reshape(3, 10, 1)
    np.save(tmp_path / "x.npy", x)
    cli("predict", "latest", "--input", tmp_path / "x.npy", "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 30 and set(rows[0]) == {"sequence", "step", "prediction_0"}
    expected = forward_best(next(runs_dir.iterdir()), x)  # sine_cosine: raw inputs, no scaler
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


# 40 points, the first 20 for training, in sequences of 5: 4 sequences, 1 of them validates (0.25),
# 3 train at batch size 1: 3 optimizer steps an epoch, 12 in the 4 epochs.
SCHEDULE_RUN = ["data.seq_len=5", "train.batch_size=1", "train.epochs=4", "train.val_fraction=0.25"]


def one_cycle(step: int, total: int, max_lr: float, pct_start: float) -> float:
    """OneCycleLR's rate after `step` steps (two cosine phases; div_factor 25, final_div_factor 1e4)."""
    start, low = max_lr / 25, max_lr / 25 / 1e4
    peak_at, end_at = pct_start * total - 1, total - 1

    def cos(a, b, pct):
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= peak_at:
        return cos(start, max_lr, step / peak_at)
    return cos(max_lr, low, (step - peak_at) / (end_at - peak_at))


# The lr column holds the rate each epoch trained with: per-epoch schedules step after the epoch's
# row (epoch k ran after k-1 steps), onecycle steps after every batch (epoch k ends after 3k of 12).
SCHEDULES = {
    "step": (["train.scheduler.step_size=2", "train.scheduler.gamma=0.5"],
             [0.01 * 0.5 ** ((k - 1) // 2) for k in (1, 2, 3, 4)]),
    "cosine": (["train.scheduler.min_lr=0.001"],  # T_max = train.epochs = 4
               [0.001 + (0.01 - 0.001) * (1 + math.cos(math.pi * (k - 1) / 4)) / 2 for k in (1, 2, 3, 4)]),
    "onecycle": (["train.scheduler.max_lr=0.02", "train.scheduler.pct_start=0.25"],
                 [one_cycle(3 * k, 12, 0.02, 0.25) for k in (1, 2, 3, 4)]),
    # lr 1e-7: the validation loss cannot improve by plateau's relative threshold (1e-4), so with
    # patience 0 epoch 1 sets the best, and every later epoch halves the rate (factor 0.5)
    "plateau": (["train.lr=1e-7", "train.scheduler.patience=0", "train.scheduler.factor=0.5"],
                [1e-7, 1e-7, 5e-8, 2.5e-8]),
}


@pytest.mark.parametrize("sched", list(SCHEDULES))
def test_schedulers_record_the_learning_rate(cli, write_config, runs_dir, sched):
    sets, expected = SCHEDULES[sched]
    train(cli, write_config, f"train.scheduler.name={sched}", *SCHEDULE_RUN, *sets)
    rows = list(csv.DictReader(open(next(runs_dir.iterdir()) / "metrics.csv")))
    if sched == "plateau":  # the stall the expected rates assume
        val = [float(r["val_loss"]) for r in rows]
        assert all(abs(b - a) < 1e-4 * a for a, b in zip(val, val[1:])), val
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=0), (lrs, expected)


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
    # the test split, built here from the data's definition: sin over 40 points of [0, 12π], the last
    # 20 in 2 sequences of 10; its predictions against best.pt's weights forwarded without lstmctl
    t = np.linspace(0, 12 * np.pi, 40)
    x_test = np.sin(t[20:]).astype(np.float32).reshape(2, 10, 1)
    assert np.allclose(run.data.test.x.numpy(), x_test, atol=1e-6)
    expected = forward_best(run.path, x_test)
    assert np.abs(expected).max() > 0.01  # a real output, not an all-zero model
    assert np.allclose(run.predict(x_test), expected, atol=1e-6)
