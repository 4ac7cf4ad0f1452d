"""A user's mistake: one line on stderr naming the problem, exit code 2, no traceback; --debug shows it."""

import pytest

from tests.conftest import run_lstmctl


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    out = result.output.strip()
    assert "Traceback" not in out
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "update, needles",
    [
        ({"model.hiden_size": 3}, ["unknown key 'model.hiden_size'", "did you mean 'hidden_size'"]),
        ({"train.epochs": -1}, ["train.epochs"]),
        ({"train.lr": "abc"}, ["train.lr", "valid number"]),
        ({"data.name": "nope"}, ["unknown dataset 'nope'", "sine_cosine"]),
        ({"model.name": "nope"}, ["unknown model 'nope'", "lstm"]),
        ({"device": "cuda:7"}, ["device 'cuda:7' is not available", "available: cpu"]),
    ],
)
def test_config_mistakes(cli, write_config, update, needles):
    one_line_error(cli("train", write_config(update), ok=False), *needles)


def test_missing_config_and_yaml_syntax(cli, tmp_path):
    one_line_error(cli("train", tmp_path / "nope.yaml", ok=False), "config file not found", "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {name: sine_cosine\n")
    one_line_error(cli("train", bad, ok=False), "bad.yaml line", "invalid YAML")


def test_unknown_and_ambiguous_runs(cli, write_config):
    one_line_error(cli("eval", "latest", ok=False), "no runs in")
    cli("train", write_config(), "--quiet")
    cli("train", write_config(), "--quiet")
    one_line_error(cli("eval", "zzz", ok=False), "no run 'zzz'")
    one_line_error(cli("eval", "20", ok=False), "ambiguous")
    one_line_error(cli("plot", "../../etc", ok=False), "not a run id")
    one_line_error(cli("eval", "a/b", ok=False), "not a run id")


def test_run_without_checkpoint(cli, write_config, runs_dir):
    cli("train", write_config(), "--quiet")
    run = next(runs_dir.iterdir())
    for f in (run / "checkpoints").iterdir():
        f.unlink()
    one_line_error(cli("eval", "latest", ok=False), "no best.pt checkpoint yet")


def test_bad_split_and_override(cli, write_config):
    one_line_error(cli("train", write_config(), "--set", "train.lr", ok=False), "KEY=VALUE")
    cli("train", write_config(), "--quiet")
    one_line_error(cli("eval", "latest", "--split", "val", ok=False), "no 'val' split")
    one_line_error(cli("eval", "latest", "--split", "bogus", ok=False), "--split must be")


def test_debug_shows_the_traceback(write_config):
    path = write_config({"model.hiden_size": 3})
    plain = run_lstmctl("train", path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = run_lstmctl("--debug", "train", path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    per_command = run_lstmctl("train", path, "--debug")
    assert "Traceback" in per_command.stderr


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lstmctl.cli import app\n"
        "for args in (['--help'], ['eval', '--help'], ['train', '--help']):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "bad = [m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
