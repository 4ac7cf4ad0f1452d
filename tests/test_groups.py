"""Groups of seeds through the real CLI: train --seeds, runs/show/eval/compare/resume of a group, the
statistics against hand computations, bad input."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lstmctl import load_run
from lstmctl.commands import compare as compare_command
from lstmctl.commands import plot as plot_command
from lstmctl.commands import seeds as seeds_command
from lstmctl.commands.output import run_row
from lstmctl.commands.sweep import rank
from lstmctl.errors import RunFailed, UserError
from lstmctl.plots.run import metric_panel_column, plot_loss
from lstmctl.runs import RunDir
from lstmctl.stats import summarize, welch

T975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))  # t(0.975, df=2) in closed form: F(t) = 1/2 + t / (2 sqrt(t^2 + 2))
VAL = {"train.val_fraction": 0.25}


def group_of(cli, cfg, *args) -> dict:
    return json.loads(cli("train", cfg, *args, "--json").stdout)


def evals(runs_dir, ids) -> list[dict]:
    return [json.loads((runs_dir / i / "eval.json").read_text())["metrics"] for i in ids]


def one_line_error(r, *words) -> None:
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    for w in words:
        assert w in lines[0], (w, lines[0])


# ---------------------------------------------------------------- the statistics, by hand


def test_welch_against_the_formula_by_hand():
    a, b = [0.80, 0.82, 0.79, 0.85], [0.86, 0.90, 0.88]
    ma, mb = sum(a) / 4, sum(b) / 3
    va = sum((x - ma) ** 2 for x in a) / 3
    vb = sum((x - mb) ** 2 for x in b) / 2
    se = math.sqrt(va / 4 + vb / 3)
    df = (va / 4 + vb / 3) ** 2 / ((va / 4) ** 2 / 3 + (vb / 3) ** 2 / 2)  # Welch-Satterthwaite
    w = welch(a, b)
    assert w["difference"] == pytest.approx(mb - ma, abs=1e-12)
    assert w["t"] == pytest.approx((mb - ma) / se, rel=1e-12)
    assert w["df"] == pytest.approx(df, rel=1e-12)
    assert "Welch" in w["test"]
    assert w["verdict"] == ("beyond seed noise" if w["p_value"] < 0.05 else "within seed noise")
    assert (w["ci95"][0] > 0) == (w["p_value"] < 0.05)  # the interval leaves out 0 exactly when p < 0.05


def test_welch_p_value_and_interval_where_df_is_two():
    # two runs a side with equal variances: df = 2 exactly, where the t distribution has a closed form
    w = welch([0.0, 2.0], [3.0, 5.0])
    t = 3 / math.sqrt(2)
    assert w["df"] == pytest.approx(2.0) and w["t"] == pytest.approx(t)
    assert w["p_value"] == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)  # = 0.16795
    assert w["ci95"] == pytest.approx([3 - T975_DF2 * math.sqrt(2), 3 + T975_DF2 * math.sqrt(2)], rel=1e-9)
    assert w["verdict"] == "within seed noise"
    far = welch([0.0, 0.1], [5.0, 5.1])
    assert far["p_value"] < 0.01 and far["verdict"] == "beyond seed noise"
    same = welch([1.0, 1.0], [1.0, 1.0])  # no spread at all: nothing to test
    assert same["p_value"] == 1.0 and same["t"] is None and same["verdict"] == "within seed noise"
    with pytest.raises(ValueError):
        welch([1.0], [1.0, 2.0])


def test_summary_of_a_group_against_numpy():
    x = [0.3, 0.5, 0.4]
    s = summarize(x)
    assert s["n"] == 3 and s["mean"] == pytest.approx(np.mean(x)) and s["std"] == pytest.approx(np.std(x, ddof=1))
    half = T975_DF2 * np.std(x, ddof=1) / math.sqrt(3)
    assert s["ci95"] == pytest.approx([np.mean(x) - half, np.mean(x) + half])
    assert summarize([2.0]) == {"mean": 2.0, "std": None, "n": 1, "ci95": None}
    assert summarize([None, float("nan")])["n"] == 0


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


@pytest.mark.parametrize("args, words", [
    (["--seeds", "a,b"], ["'a' is not an integer"]),
    (["--seeds", "1.5"], ["not an integer"]),
    (["--seeds", "0,1,1"], ["repeats seed 1"]),
    (["--seeds", "0"], ["between 1 and"]),
    (["--seeds", "1,"], ["empty item"]),
    (["--parallel", "2"], ["needs --seeds"]),
    (["--seeds", "3", "--nproc", "2"], ["--nproc and --seeds"]),
    (["--seeds", "3", "--set", "seed=4"], ["both choose the seed"]),
    (["--seeds", "2", "--parallel", "0"], ["at least 1"]),
])
def test_bad_seed_options(cli, write_config, runs_dir, args, words):
    one_line_error(cli("train", write_config(), *args, ok=False), *words)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


# ---------------------------------------------------------------- a group through every reading command


def test_group_train_runs_show_eval(cli, write_config, runs_dir, tmp_path, monkeypatch):
    out = group_of(cli, write_config(VAL), "--seeds", "3")
    assert set(out) == {"group", "runs"} and len(out["runs"]) == 3
    gid, ids = out["group"], out["runs"]
    assert gid.endswith("-tiny-x3") and gid not in ids and not (runs_dir / gid).exists()
    infos = [json.loads((runs_dir / i / "run.json").read_text()) for i in ids]
    assert [i["group"] for i in infos] == [gid] * 3 and [i["seed"] for i in infos] == [0, 1, 2]
    assert all(i["status"] == "completed" and "seed=%d" % i["seed"] in i["overrides"] for i in infos)
    assert len({next(csv.DictReader(open(runs_dir / i / "metrics.csv")))["train_loss"] for i in ids}) == 3  # seeds differ

    # runs: one row for the group, mean +- std of the best monitored value; --all: every run
    rows = json.loads(cli("runs", "--json").stdout)
    assert len(rows) == 1 and rows[0]["kind"] == "group" and rows[0]["id"] == gid and rows[0]["n"] == 3
    bests = [i["best"]["value"] for i in infos]
    assert rows[0]["best_value"] == pytest.approx(np.mean(bests)) and rows[0]["best_std"] == pytest.approx(np.std(bests, ddof=1))
    assert rows[0]["best_monitor"] == "val_loss" and rows[0]["best_mode"] == "min" and rows[0]["status"] == "completed"
    every = json.loads(cli("runs", "--all", "--json").stdout)
    assert sorted(r["id"] for r in every) == sorted(ids) and all(r["group"] == gid for r in every)
    assert all(r["best_epoch"] == i["best"]["epoch"] for r in every for i in infos if i["id"] == r["id"])
    table = cli("runs").stdout
    assert gid in table and "(3 runs)" in table and "±" in table and "val_loss (min)" in table

    # eval GROUP: each run's eval.json, and each metric aggregated (numpy, scipy's t for the interval)
    result = json.loads(cli("eval", gid, "--json").stdout)
    assert result["group"] == gid and result["runs"] == ids
    per_run = evals(runs_dir, ids)
    for name in ("mse", "rmse", "mae"):
        values = [m[name] for m in per_run]
        agg = result["metrics"][name]
        assert agg["n"] == 3 and agg["mean"] == pytest.approx(np.mean(values)) and agg["std"] == pytest.approx(np.std(values, ddof=1))
        half = scipy_stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
        assert agg["ci95"] == pytest.approx([np.mean(values) - half, np.mean(values) + half])
    assert "mse" in cli("eval", gid).stdout

    # show GROUP (a unique prefix of the id works too)
    shown = json.loads(cli("show", gid[:-1], "--json").stdout)
    assert shown["group"] == gid and shown["runs"] == ids and shown["record"]["seeds"] == [0, 1, 2]
    assert shown["best"]["mean"] == pytest.approx(np.mean(bests)) and shown["best"]["n"] == 3
    assert shown["eval"]["metrics"]["mse"]["mean"] == pytest.approx(result["metrics"]["mse"]["mean"])
    text = cli("show", gid).stdout
    assert "best val_loss (min)" in text and "test mse" in text and ids[0] in text

    # a group where a single run is needed: one line, exit 2
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((1, 10, 1), dtype=np.float32))
    one_line_error(cli("predict", gid, "--input", data, ok=False), "predict needs a single run")
    one_line_error(cli("resume", gid, "--from", "best", "--new-run", ok=False), "resume --new-run needs a single run")
    with pytest.raises(UserError, match="a group of 3 runs"):
        load_run(gid)
    assert len(list(runs_dir.iterdir())) == 4  # the three runs and .groups: nothing new
    drawn = []  # plot GROUP draws each run's figures (not drawn here: six figures cost seconds)
    monkeypatch.setattr(plot_command, "plot_run", lambda run, fmt, checkpoint: drawn.append(run.id) or [run.plots / "loss.png"])
    assert cli("plot", gid).stdout.split() == [str(runs_dir / i / "plots" / "loss.png") for i in ids] and drawn == ids


def test_compare_groups_says_whether_the_difference_is_beyond_seed_noise(cli, write_config, runs_dir, tmp_path, monkeypatch):
    # 80 points, 10 epochs: lr 0.03 learns (test mse ~0.26) and lr 1e-5 does not (~0.54), whatever the seed
    base = {"data.points": 80, "train.epochs": 10, "train.lr": 0.03, **VAL}
    a = group_of(cli, write_config(base), "--seeds", "3")["group"]
    other_seeds = group_of(cli, write_config(base), "--seeds", "3,4,5")["group"]
    slow = group_of(cli, write_config({**base, "train.lr": 1e-5}), "--seeds", "3")["group"]
    r = cli("compare", a, slow, ok=False)
    one_line_error(r, f"run `lstmctl eval {a}` first")
    for g in (a, other_seeds, slow):
        cli("eval", g)

    beyond = json.loads(cli("compare", a, slow, "--json", "--out", tmp_path / "far.png").stdout)
    xa = [m["mse"] for m in evals(runs_dir, beyond["a"]["runs"])]
    xb = [m["mse"] for m in evals(runs_dir, beyond["b"]["runs"])]
    ma, mb, va, vb = sum(xa) / 3, sum(xb) / 3, np.var(xa, ddof=1), np.var(xb, ddof=1)
    se = math.sqrt(va / 3 + vb / 3)
    df = (va / 3 + vb / 3) ** 2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2)  # Welch-Satterthwaite, by hand
    assert beyond["difference"] == pytest.approx(mb - ma) and beyond["df"] == pytest.approx(df) and beyond["t"] == pytest.approx((mb - ma) / se)
    assert beyond["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(mb - ma) / se, df))
    half = scipy_stats.t.ppf(0.975, df) * se
    assert beyond["ci95"] == pytest.approx([mb - ma - half, mb - ma + half])
    assert beyond["verdict"] == "beyond seed noise" and beyond["p_value"] < 0.01 and beyond["ci95"][0] > 0
    assert beyond["metric"] == "test mse" and "Welch" in beyond["test"] and beyond["differences"] == {"train.lr": [0.03, 1e-5]}
    assert (tmp_path / "far.png").read_bytes().startswith(b"\x89PNG")

    monkeypatch.setattr(compare_command, "plot_compare_groups", lambda groups, out, fmt: out)  # drawn once above
    within = json.loads(cli("compare", a, other_seeds, "--json").stdout)  # the same config, other seeds
    assert within["verdict"] == "within seed noise" and within["p_value"] > 0.2 and within["differences"] == {}
    assert within["ci95"][0] < 0 < within["ci95"][1]
    text = cli("compare", a, slow).stdout
    assert "beyond seed noise" in text and "Welch's t-test" in text and "95% interval" in text
    one_line_error(cli("compare", a, beyond["a"]["runs"][0], ok=False), "not a mix")


# ---------------------------------------------------------------- failures, resume, --parallel


def test_a_failed_member_is_reported_and_the_others_finish(cli, write_config, runs_dir, monkeypatch):
    real = seeds_command.start_training

    def flaky(cfg, *a, **k):
        if cfg.seed == 1:
            raise RunFailed("run x failed: the training loss became nan")
        return real(cfg, *a, **k)

    monkeypatch.setattr(seeds_command, "start_training", flaky)
    r = cli("train", write_config(), "--seeds", "3", "--json", ok=False)
    assert r.exit_code == 1 and "1 of 3 runs failed (seed 1)" in r.output
    out = json.loads(r.stdout.splitlines()[0])
    assert len(out["runs"]) == 2 and out["failed"][0]["seed"] == 1 and "nan" in out["failed"][0]["error"]


def test_a_data_error_of_the_first_member_is_one_line_and_leaves_nothing(cli, write_config, runs_dir, monkeypatch):
    def no_data(cfg, *a, **k):
        raise UserError("data file not found: prices.csv")

    monkeypatch.setattr(seeds_command, "start_training", no_data)
    one_line_error(cli("train", write_config(), "--seeds", "3", ok=False), "data file not found")
    assert not runs_dir.exists()


def test_resume_group_continues_the_unfinished_and_starts_the_missing(cli, write_config, runs_dir):
    out = group_of(cli, write_config({"train.epochs": 2}), "--seeds", "3")
    gid, (done, cut, gone) = out["group"], out["runs"]
    info = json.loads((runs_dir / cut / "run.json").read_text())
    info.update(status="interrupted", epochs=3)  # as if stopped with one epoch to go
    (runs_dir / cut / "run.json").write_text(json.dumps(info))
    for f in sorted((runs_dir / gone).rglob("*"), reverse=True):  # a member whose directory was deleted
        f.rmdir() if f.is_dir() else f.unlink()
    (runs_dir / gone).rmdir()

    r = cli("resume", gid, "--json")
    res = json.loads(r.stdout)
    assert res["skipped"] == [done] and res["resumed"] == [cut] and len(res["started"]) == 1 and not res["failed"]
    assert f"skipped {done} (seed 0): completed" in r.stderr
    assert [row["epoch"] for row in csv.DictReader(open(runs_dir / cut / "metrics.csv"))] == ["1", "2", "3"]
    new = json.loads((runs_dir / res["started"][0] / "run.json").read_text())
    assert new["group"] == gid and new["seed"] == 2 and new["status"] == "completed"
    assert sorted(res["runs"]) == sorted([done, cut, res["started"][0]])


def test_parallel_members_are_processes_sharing_the_cores(cli, write_config, runs_dir):
    """The members are real `python -m lstmctl train` processes (this command itself runs in-process)."""
    runs = runs_dir
    out = json.loads(cli("train", write_config(), "--seeds", "2", "--parallel", "2", "--json").stdout)
    assert set(out) == {"group", "runs"} and len(out["runs"]) == 2
    for rid, seed in zip(out["runs"], (0, 1)):
        info = json.loads((runs / rid / "run.json").read_text())
        assert info["group"] == out["group"] and info["seed"] == seed and info["status"] == "completed"
        assert info["pid"] != os.getpid() and info["argv"][0].endswith("__main__.py")
        assert info["pid"] != json.loads((runs / out["runs"][1 - seed] / "run.json").read_text())["pid"]
        assert any(o.startswith("train.threads=") for o in info["overrides"])


# ---------------------------------------------------------------- what people look at


def test_runs_rows_read_old_runs_and_sweeps_rank_by_mode(tmp_path):
    old = RunDir(tmp_path / "20200101-000000-old")
    old.path.mkdir()
    old.run_json.write_text(json.dumps({"status": "completed", "best": {"epoch": 4, "value": 0.1, "monitor": "train_loss"}}))
    row = run_row(old)
    assert row["best_mode"] == "min" and row["best_epoch"] == 4 and row["group"] is None
    rows = [{"best": 0.8, "mode": "max"}, {"best": None, "mode": "max"}, {"best": 0.9, "mode": "max"}]
    assert [r["best"] for r in sorted(rows, key=rank)] == [0.9, 0.8, None]
    rows = [{"best": 0.8, "mode": "min"}, {"best": 0.2, "mode": "min"}]
    assert [r["best"] for r in sorted(rows, key=rank)] == [0.2, 0.8]


def test_loss_figure_gets_a_panel_for_a_validation_metric(tmp_path):
    rows = [{"epoch": 1, "val_loss": 1.0, "val_mae": 0.5, "val_accuracy": None}]
    assert metric_panel_column(rows, "val_accuracy") == "val_mae"  # never recorded: not drawn
    rows[0]["val_accuracy"] = 0.7
    assert metric_panel_column(rows, "val_accuracy") == "val_accuracy"
    assert metric_panel_column(rows, "val_loss") == "val_mae"
    assert metric_panel_column([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0}], "val_loss") is None

    run = RunDir(tmp_path / "20200101-000000-r")
    run.path.mkdir()
    run.run_json.write_text(json.dumps({"best": {"epoch": 2, "value": 0.8, "monitor": "val_accuracy", "mode": "max"}}))
    lines = ["epoch,train_loss,val_loss,val_accuracy,val_macro_f1,lr,seconds", "1,1.0,0.9,0.6,0.5,0.01,0.1",
             "2,0.8,,,,0.01,0.1", "3,0.7,0.8,0.8,0.7,0.01,0.1"]
    run.metrics_csv.write_text("\n".join(lines) + "\n")

    def width(path):
        return int.from_bytes(path.read_bytes()[16:20], "big")

    wide = plot_loss(run, tmp_path, "png")
    run.metrics_csv.write_text("epoch,train_loss,val_loss,lr,seconds\n1,1.0,0.9,0.01,0.1\n")
    (tmp_path / "one").mkdir()
    narrow = plot_loss(run, tmp_path / "one", "png")
    assert width(wide) > 1.4 * width(narrow)
