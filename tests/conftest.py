"""Shared fixtures: an isolated runs directory, a CLI runner, tiny configs written to disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lstmctl.cli import app

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

TINY = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "sine_cosine", "points": 40, "seq_len": 10},
    "model": {"name": "lstm", "hidden_size": 4},
    "train": {"epochs": 3, "batch_size": 2, "lr": 0.01},
}


@pytest.fixture(autouse=True, scope="session")
def _kernel_cache(tmp_path_factory):
    """lstmctl's C LSTM kernel is built once per test session, into a session directory (also for
    the CLI subprocesses, which inherit the environment), never into the user's ~/.cache."""
    old = os.environ.get("LSTMCTL_CACHE_DIR")
    os.environ["LSTMCTL_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernel-cache"))
    for var in ("LSTMCTL_KERNEL", "LSTMCTL_KERNEL_STEP"):
        os.environ.pop(var, None)
    yield
    if old is None:
        os.environ.pop("LSTMCTL_CACHE_DIR", None)
    else:
        os.environ["LSTMCTL_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own runs directory through the environment, and runs from tmp_path."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LSTMCTL_RUNS_DIR", str(runs))
    monkeypatch.delenv("LSTMCTL_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return tmp_path / "runs"


class Cli:
    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool | None = True):
        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
        if ok is True and result.exit_code != 0:
            raise AssertionError(
                f"lstmctl {' '.join(map(str, args))} exited {result.exit_code}\n{result.output}\n{result.exception!r}"
            )
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def write_config(tmp_path):
    """write_config(overrides_dict=None, name='cfg.yaml') -> Path of a YAML config based on TINY."""

    def _write(update: dict | None = None, name: str = "cfg.yaml", base: dict | None = None) -> Path:
        cfg = yaml.safe_load(yaml.safe_dump(base or TINY))
        for key, value in (update or {}).items():
            node = cfg
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return _write


def run_lstmctl(*args: str, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (`python -m lstmctl`)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lstmctl", *map(str, args)], capture_output=True, text=True, env=full_env, timeout=timeout, **kw
    )


# In CI (CI=true) what the suite needs is installed by .ci/run: a test that would skip for want of it
# is a broken CI set-up, so it fails instead of going green with part of the suite silently skipped.
# Each entry: a piece of a skip reason, and what CI failed to provide.
REQUIRED_IN_CI = {
    "C compiler": "a C compiler (apt-get install gcc)",
    "Fashion-MNIST files absent": "Debian's dataset-fashion-mnist",
    "tensorboard extra": "the tensorboard extra",
    "tune extra": "the tune extra (optuna, psycopg)",
    "PostgreSQL": "a PostgreSQL server (tools/postgres.sh)",
}


def skip_is_a_ci_failure(reason: str) -> str | None:
    """What CI lacks when a test skips with `reason` (None: a skip that is fine anywhere, e.g. CUDA)."""
    if os.environ.get("CI", "").lower() != "true":
        return None
    return next((need for key, need in REQUIRED_IN_CI.items() if key in reason), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        need = skip_is_a_ci_failure(reason)
        if need is not None:
            report.outcome = "failed"
            report.longrepr = f"CI=true but this test would skip ({reason}): .ci/run did not provide {need}"
