"""lstmctl tune (lstmctl/search/): spaces, trials as ordinary runs, pruning, tune show, storages (journal file,
SQLite, a real PostgreSQL), worker processes, and faults (Ctrl-C, kill -9 with heartbeats).

Tiny configs (sine_cosine, 40 points, hidden 4, 2-4 epochs). Worker processes and the killed worker
are real `python -m lstmctl` processes; PostgreSQL is a real server started by tools/postgres.sh
(skipped, with the reason, only where it cannot be installed, and never under CI=true).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from lstmctl.errors import UserError
from lstmctl.search.space import parse_param, parse_space, spaces_of, yaml_value
from tests.conftest import REPO, TINY

if os.environ.get("CI") != "true":  # CI installs the extra (the README's test command does): never skipped there
    pytest.importorskip("optuna", reason="the tune extra is not installed: pip install -e '.[test]'")

SEARCH = {"train.lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True}, "model.hidden_size": {"choices": [3, 4]}}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def search_config(write_config):
    def _write(epochs: int = 2, name: str = "search.yaml", **extra):
        base = {**TINY, "search": SEARCH, **extra}
        return write_config({"train.epochs": epochs, "train.val_fraction": 0.25}, name=name, base=base)
    return _write


def tune_json(cli, *args) -> dict:
    return json.loads(cli("tune", *args, "--json").stdout)


def run_info(runs_dir, run_id) -> dict:
    return json.loads((runs_dir / run_id / "run.json").read_text())


def check_consistent(data: dict, runs_dir, n: int) -> None:
    """n trials numbered 0..n-1, each a run tagged with the study and its number; the best is the best."""
    trials = data["trials"]
    assert sorted(t["number"] for t in trials) == list(range(n))
    for t in trials:
        if t["state"] in ("COMPLETE", "PRUNED"):
            info = run_info(runs_dir, t["run"])
            assert (info["study"], info["trial"]) == (data["study"], t["number"])
    done = [t for t in trials if t["state"] == "COMPLETE"]
    pick = max if data["direction"] == "maximize" else min
    assert data["best"]["value"] == pick(t["value"] for t in done)
    assert data["best"]["run"] in {t["run"] for t in done if t["value"] == data["best"]["value"]}


# ---------------------------------------------------------------- spaces


def test_spaces_parse_every_form_and_refuse_bad_ones():
    lr = parse_param("train.lr={low: 1e-4, high: 1e-1, log: true}")  # 1e-4 is text to YAML 1.1: read as a number
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 0.1, True)
    bs = parse_space("train.batch_size", {"low": 16, "high": 128, "step": 16})
    assert (bs.kind, bs.step, bs.grid()[:3], len(bs.grid())) == ("int", 16, [16, 32, 48], 8)
    assert parse_space("x.y", {"low": 1, "high": 4, "type": "float"}).kind == "float"
    assert parse_space("model.name", ["lstm", "gru"]).choices == ("lstm", "gru")
    sizes = parse_space("model.hidden_sizes", {"choices": [[8, 4], [16]]})
    assert sizes.optuna_choices() == ["[8, 4]", "[16]"] and sizes.override("[8, 4]") == "model.hidden_sizes=[8, 4]"
    assert lr.override(1e-05) == "train.lr=1.0e-05" and yaml.safe_load(yaml_value(1e-05)) == 1e-05
    spaces = spaces_of(SEARCH, ["train.lr={choices: [0.1]}", "train.epochs={low: 2, high: 4}"])
    assert list(spaces) == ["train.lr", "model.hidden_size", "train.epochs"] and spaces["train.lr"].choices == (0.1,)
    for key, spec, words in [("a.b", {"low": 2, "high": 1}, "below"), ("a.b", {"low": 0, "high": 1, "log": True}, "low > 0"),
                             ("a.b", {"lo": 1, "high": 2}, "unknown key 'lo'"), ("a.b", {"choices": []}, "non-empty"),
                             ("a.b", {"low": 1.5, "high": 3, "type": "int"}, "whole numbers"), ("a..b", [1], "dotted"),
                             ("a.b", {"low": "x", "high": 1}, "finite number"), ("a.b", 3, "a space is")]:
        with pytest.raises(UserError, match=words):
            parse_space(key, spec)
    with pytest.raises(UserError, match="continuous range"):
        lr.grid()
    with pytest.raises(UserError, match="KEY=SPACE"):
        parse_param("train.lr")


# ---------------------------------------------------------------- trials are runs; a study continues


def test_trials_are_tagged_runs_the_study_continues_and_show_reports_it(cli, search_config, runs_dir):
    cfg = search_config()
    data = tune_json(cli, cfg, "--trials", 3)
    assert data["study"] == "tiny" and data["direction"] == "minimize" and data["monitor"] == "val_loss"
    assert [t["state"] for t in data["trials"]] == ["COMPLETE"] * 3
    check_consistent(data, runs_dir, 3)
    info = run_info(runs_dir, data["trials"][1]["run"])
    assert info["status"] == "completed" and any(o.startswith("train.lr=") for o in info["overrides"])
    listed = json.loads(cli("runs", "--study", "tiny", "--json").stdout)
    assert {r["id"] for r in listed} == {t["run"] for t in data["trials"]}

    again = cli("tune", cfg, "--trials", 3)  # --trials counts the study's trials in all
    assert "already has its 3 trials" in again.output
    more = tune_json(cli, cfg, "--trials", 4)
    check_consistent(more, runs_dir, 4)
    assert more["trials"][:3] == data["trials"]

    shown = tune_json(cli, "show", "tiny")
    assert set(shown) >= {"study", "direction", "best", "trials"} and set(shown["best"]) >= {"value", "params", "run", "config"}
    assert set(shown["trials"][0]) >= {"number", "state", "value", "params", "run", "epochs"} and shown["trials"][0]["epochs"] == 2
    assert shown["best"] == more["best"]
    figures = shown["figures"]
    assert any(f.endswith("history.png") for f in figures) and all(open(f, "rb").read(8) == PNG for f in figures)
    best_yaml = yaml.safe_load(open(shown["best"]["config"]).read())
    assert best_yaml == yaml.safe_load((runs_dir / shown["best"]["run"] / "config.yaml").read_text())
    table = cli("tune", "show", "tiny").stdout
    assert "COMPLETE" in table and "best: trial" in table and "train.lr" in table
    cli("train", shown["best"]["config"], "--quiet")  # best.yaml trains as it is
    cli("eval", shown["best"]["run"])  # a trial is an ordinary run


def test_each_sampled_config_is_validated_and_mistakes_stop_before_anything_is_written(cli, search_config, runs_dir):
    cfg = search_config()
    data = tune_json(cli, cfg, "--sampler", "grid", "--param", "model.hidden_size=[4, 0]", "--param", "train.lr=[0.01]",
                     "--study", "v")
    states = {t["params"]["model.hidden_size"]: t for t in data["trials"]}
    assert states[4]["state"] == "COMPLETE" and states[0]["state"] == "FAIL"
    assert "model.hidden_size" in states[0]["error"] and states[0]["run"] is None
    assert len([p for p in runs_dir.iterdir() if not p.name.startswith(".")]) == 1

    for args, words in [(["--param", "train.lrr={low: 0.001, high: 0.1}"], "did you mean 'lr'"),
                        (["--param", "train.lr={low: 1, high: 0.1}"], "below"),
                        (["--sampler", "grid"], "continuous range"), (["--sampler", "bayes"], "--sampler must be"),
                        (["--nproc", "2"], "DDP"), (["--trials", "0"], "at least 1")]:
        r = cli("tune", cfg, "--study", "refused", *args, ok=False)
        assert r.exit_code == 2 and words in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1
    r = cli("tune", search_config(search=None, name="plain.yaml"), "--study", "refused", ok=False)
    assert r.exit_code == 2 and "nothing to search" in r.output
    assert not (runs_dir / ".studies" / "refused").exists()


# ---------------------------------------------------------------- pruning


def test_pruned_trials_end_as_pruned_runs(cli, search_config, runs_dir):
    # The grid sampler's order is fixed by its seed: with seed 2 the two hopeless learning rates come
    # after five completed trials, so the median pruner stops them at their first epoch.
    lrs = "[0.03, 0.02, 0.04, 0.025, 0.035, 0.045, 0.05, 1.0e-6, 2.0e-6]"
    data = tune_json(cli, search_config(epochs=4), "--study", "p", "--sampler", "grid", "--seed", "2",
                     "--param", f"train.lr={lrs}", "--param", "model.hidden_size=[4]")
    check_consistent(data, runs_dir, 9)
    hopeless = [t for t in data["trials"] if t["params"]["train.lr"] < 1e-3]
    assert [t["state"] for t in hopeless] == ["PRUNED", "PRUNED"]
    for t in hopeless:
        assert t["epochs"] == t["pruned_at"] < 4
        info = run_info(runs_dir, t["run"])
        assert info["status"] == "pruned" and info["pruned_at"] == t["epochs"] and info["stop_reason"] == "pruned"
    listed = json.loads(cli("runs", "--study", "p", "--status", "pruned", "--json").stdout)
    assert {r["id"] for r in listed} >= {t["run"] for t in hopeless}
    assert "pruned" in cli("runs", "--study", "p").stdout
    hb = tune_json(cli, search_config(epochs=3), "--study", "hb", "--pruner", "hyperband", "--trials", 3)
    assert {t["state"] for t in hb["trials"]} <= {"COMPLETE", "PRUNED"}


# ---------------------------------------------------------------- the extra, --help, storages


def test_without_optuna_tune_and_sweep_name_the_install(cli, search_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    for args in (["tune", search_config()], ["sweep", search_config(), "--grid", "train.lr=0.01,0.02"]):
        r = cli(*args, ok=False)
        assert r.exit_code == 2 and "pip install 'lstmctl[tune]'" in r.output and len(r.output.strip().splitlines()) == 1


def test_help_does_not_import_optuna():
    code = ("import sys; from typer.testing import CliRunner; from lstmctl.cli import app; "
            "[CliRunner().invoke(app, a) for a in (['--help'], ['tune', '--help'], ['tune', 'run', '--help'])]; "
            "print('optuna' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.stdout.strip() == "False", done.stderr


def test_sqlite_is_accepted_with_a_warning_and_bad_storage_is_one_line(cli, search_config, tmp_path):
    cfg = search_config()
    r = cli("tune", cfg, "--trials", 1, "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "lite")
    assert "warning: SQLite" in r.output and "trial 0 COMPLETE" in r.output
    for args in (["tune", cfg, "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db"],
                 ["tune", "show", "lite", "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db"]):
        r = cli(*args, ok=False)
        assert r.exit_code == 2 and "cannot open the study storage" in r.output and "secret" not in r.output
        assert len(r.output.strip().splitlines()) == 1
    r = cli("tune", "show", "nothing-here", ok=False)
    assert r.exit_code == 2 and "no study 'nothing-here'" in r.output
    r = cli("tune", "show", "nothing-here", "--storage", f"sqlite:///{tmp_path / 's.db'}", ok=False)
    assert r.exit_code == 2 and "no study 'nothing-here'" in r.output


# ---------------------------------------------------------------- faults


def _when_training(runs_dir, then, rows: int = 2, timeout: float = 90.0) -> threading.Thread:
    """Call `then()` once some run of runs_dir has `rows` epochs in metrics.csv (from a thread)."""
    def watch():
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in runs_dir.glob("*/metrics.csv") if runs_dir.exists() else []:
                try:
                    if len(m.read_text().splitlines()) > rows:
                        then()
                        return
                except OSError:
                    pass
            time.sleep(0.02)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_fails_the_running_trial_and_queues_it_again(cli, search_config, runs_dir):
    cfg = search_config(epochs=500)
    watcher = _when_training(runs_dir, lambda: os.kill(os.getpid(), signal.SIGINT))
    r = cli("tune", cfg, "--trials", 2, "--study", "c", ok=False)
    watcher.join()
    assert r.exit_code == 130 and "queued again" in r.output, r.output
    data = tune_json(cli, "show", "c")
    first, queued = data["trials"]
    assert first["state"] == "FAIL" and "interrupted" in first["error"] and first["retried"]
    assert queued["state"] == "WAITING" and queued["params"] == first["params"] and queued["run"] is None
    assert run_info(runs_dir, first["run"])["status"] == "interrupted"
    done = tune_json(cli, cfg, "--trials", 2, "--study", "c", "--set", "train.epochs=2")
    assert [t["state"] for t in done["trials"]] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert done["trials"][1]["retry_of"] == 0 and done["trials"][1]["params"] == first["params"]


def test_a_killed_worker_s_trial_is_failed_by_heartbeat_and_retried(cli, search_config, runs_dir):
    cfg = search_config(epochs=500)
    args = ["tune", str(cfg), "--trials", "2", "--study", "k", "--heartbeat", "1", "--grace", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "lstmctl", *args, "--runs-dir", str(runs_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _when_training(runs_dir, proc.kill).join()  # kill -9 mid-trial
        assert proc.wait(timeout=30) == -signal.SIGKILL, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    (killed,) = json.loads(cli("runs", "--study", "k", "--json").stdout)
    assert killed["status"] == "died"
    time.sleep(2.5)  # the grace period passes without a heartbeat
    data = tune_json(cli, *args[1:], "--set", "train.epochs=2")
    states = [t["state"] for t in data["trials"]]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"], data["trials"]
    assert data["trials"][0]["run"] == killed["id"] and data["trials"][0]["retried"]
    assert data["trials"][1]["retry_of"] == 0 and data["trials"][1]["params"] == data["trials"][0]["params"]


# ---------------------------------------------------------------- workers and PostgreSQL


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL: LSTMCTL_TEST_POSTGRES_URL (.ci/run starts one with tools/postgres.sh and exports it), or
    the cluster tools/postgres.sh starts (or finds running: it is idempotent and safe to call from parallel test
    processes). It is left running for the next session; `tools/postgres.sh stop` removes it."""
    if os.environ.get("LSTMCTL_TEST_POSTGRES_URL"):
        return os.environ["LSTMCTL_TEST_POSTGRES_URL"]
    done = subprocess.run(["bash", str(REPO / "tools" / "postgres.sh")], capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL (.ci/run installs it): {reason}")
        pytest.skip(f"no local PostgreSQL: {reason}")
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("where", ["journal", "postgres"])
def test_two_worker_processes_share_one_study(cli, search_config, runs_dir, where, request):
    storage = ["--storage", request.getfixturevalue("postgres_url")] if where == "postgres" else []
    study = f"w-{uuid.uuid4().hex[:8]}"  # the database outlives the test
    r = cli("tune", search_config(), "--trials", 8, "--workers", 2, "--study", study, "--pruner", "none", *storage, "--json")
    data = json.loads(r.stdout)
    check_consistent(data, runs_dir, 8)
    assert [t["state"] for t in data["trials"]] == ["COMPLETE"] * 8
    pids = {run_info(runs_dir, t["run"])["pid"] for t in data["trials"]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {r["id"] for r in json.loads(cli("runs", "--study", study, "--json").stdout)} == {t["run"] for t in data["trials"]}
    assert tune_json(cli, "show", study, *storage)["best"] == data["best"]


# ---------------------------------------------------------------- sweep is the grid sampler


def test_sweep_is_a_grid_study_and_lists_a_failed_run_last(cli, write_config, tmp_path, runs_dir):
    r = cli("sweep", write_config(), "--grid", "train.monitor=val_loss,val_r2", "--set", "train.val_fraction=0.25",
            "--out-dir", tmp_path, "--json", ok=False)
    assert r.exit_code == 1 and "1 of 2 runs failed" in r.output
    result = json.loads(r.stdout)
    assert [row["train.monitor"] for row in result["results"]] == ["val_loss", "val_r2"]  # the failed one last
    assert result["results"][1]["best"] is None and "one study, one metric" in result["failed"][0]["error"]
    assert result["results"][1]["run"] is None  # refused before a run directory existed
    shown = tune_json(cli, "show", result["study"])
    assert shown["study"].startswith("sweep-") and len(shown["trials"]) == 2
    assert run_info(runs_dir, result["results"][0]["run"])["sweep"] == result["sweep"]
