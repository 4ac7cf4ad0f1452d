"""The README is part of the product: its config reference and command list must match the code."""

import importlib.util

from typer.main import get_command

from lstmctl.cli import app
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _reference():
    spec = importlib.util.spec_from_file_location("reference", REPO / "tools" / "reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_config_reference_is_current():
    ref = _reference()
    assert ref.readme_block(README) == ref.render(), "README config reference is stale: run python tools/reference.py --write"


def test_every_command_is_documented():
    group = get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group such as `config`
            for sub in cmd.commands:
                assert f"lstmctl {name} {sub}" in README, f"lstmctl {name} {sub}"
        else:
            assert f"lstmctl {name}" in README, name


def test_setup_commands():
    assert "lstmctl train configs/sin2cos.yaml" in README
    assert "pip install -e '.[test,tensorboard]' && python -m pytest -q" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test,tensorboard]'" in ci and "python -m pytest -q" in ci
