"""Bad configs never produce a traceback: generated YAML, random text and bytes, and mutations of a valid
config either load or raise ConfigError; through the CLI they exit 0 or 2 with one line. A valid
config survives load(dump(c)) == c. Typer's pretty tracebacks never show local variables."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmctl import config
from lstmctl.cli import app
from lstmctl.errors import ConfigError
from tests.conftest import CONFIGS, TINY

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["auto", "cpu", "cuda", "lstm", "sine_cosine", "adam", "step", "", "1e400", "-1", "~", "null"])
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)

VALID = config.validate(copy.deepcopy(TINY)).to_dict()  # every key of a real config, defaults filled in


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


PATHS = sorted(_paths(VALID))


def _deep(depth: int):
    node: dict = {"leaf": 1}
    for _ in range(depth):
        node = {"x": node}
    return node


@st.composite
def mutated(draw):
    """A valid config with a few keys replaced by anything, removed, added or nested absurdly deep."""
    cfg = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = cfg
        for p in path[:-1]:
            parent = parent.get(p) if isinstance(parent, dict) else None
            if parent is None:
                break
        if not isinstance(parent, dict):
            continue
        op = draw(st.sampled_from(["set", "set", "negate", "huge", "drop", "unknown", "deep"]))
        key = path[-1]
        if op == "set":
            parent[key] = draw(values)
        elif op == "negate" and isinstance(parent.get(key), (int, float)) and not isinstance(parent.get(key), bool):
            parent[key] = -parent[key] - 1
        elif op == "huge":
            parent[key] = draw(st.sampled_from([10**20, 2**63, 1e308, float("inf"), -(10**19)]))
        elif op == "drop":
            parent.pop(key, None)
        elif op == "unknown":
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif op == "deep":
            parent[key] = _deep(draw(st.sampled_from([50, 500])))
    return cfg


def _load_or_config_error(text: str):
    try:
        return config.loads(text)
    except ConfigError as e:
        assert "\n" not in str(e), str(e)  # one line
        return None


def _dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@FUZZ
@given(values)
def test_any_yaml_document_loads_or_is_a_config_error(doc):
    _load_or_config_error(_dump(doc))


@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_is_a_config_error(text):
    _load_or_config_error(text)


@FUZZ
@given(st.binary(max_size=300))
def test_any_file_loads_or_is_a_config_error(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        config.load(path)
    except ConfigError:
        pass


def _has_nan(node) -> bool:
    if isinstance(node, float):
        return math.isnan(node)
    if isinstance(node, dict):
        return any(_has_nan(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_nan(v) for v in node)
    return False


@FUZZ
@given(mutated())
def test_mutated_configs_load_or_are_config_errors_and_round_trip(doc):
    cfg = _load_or_config_error(_dump(doc))
    if cfg is not None and not _has_nan(cfg.to_dict()):  # NaN != NaN: compare the rest
        assert config.loads(config.dump(cfg)) == cfg


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_round_trip(path):
    try:
        cfg = config.load(path)
    except ConfigError:
        pytest.skip(f"{path.name} is not a full config (a data file or a base)")
    assert config.loads(config.dump(cfg)) == cfg


@FEW
@given(mutated())
def test_config_validate_exits_0_or_2_with_one_line(tmp_path, doc):
    from typer.testing import CliRunner

    path = tmp_path / "fuzz.yaml"
    path.write_text(_dump(doc))
    r = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert r.exit_code in (0, 2), (r.exit_code, r.output, r.exception)
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert lines[0].startswith("ok: " if r.exit_code == 0 else "error: "), lines


NASTY = {
    "empty": b"",
    "only-a-comment": b"# nothing here\n",
    "non-utf8": b"name: \xff\xfe\x00bad\ndata: {name: sine_cosine}\n",
    "deep-lists": b"name: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    "deep-maps": b"data: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n",
    "huge-number": b"name: x\nseed: 1e400\ndata: {name: sine_cosine}\nmodel: {name: lstm, hidden_size: 100000000000000000000000}\n",
    "a-list": b"- 1\n- 2\n",
    "tab-indent": b"name: x\n\tdata: 1\n",
    "python-tag": b"name: !!python/name:os.system\ndata: {name: sine_cosine}\nmodel: {name: lstm}\n",
    "duplicate-anchor-bad": b"a: *nope\n",
    "non-string-keys": b"1: 2\ndata: {name: sine_cosine}\nmodel: {name: lstm}\n",
}


@pytest.mark.parametrize("name", sorted(NASTY))
def test_nasty_files_through_train_are_one_line(cli, tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(NASTY[name])
    for args in (["train", path, "--set", "train.epochs=1"], ["config", "validate", path]):
        r = cli(*args, ok=False)
        assert r.exit_code == 2, (args, r.output)
        lines = [l for l in r.output.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output


def test_pretty_tracebacks_never_show_locals(tmp_path):
    """Even a crash (a bug, not a user error) prints no local variables, which may hold configs or data."""
    assert app.pretty_exceptions_show_locals is False
    code = (
        "import lstmctl.commands.train as c\n"
        "def boom(*a, **k):\n"
        "    secret = 'TOP' + 'SECRET' + 'VALUE'\n"
        "    raise RuntimeError('a bug')\n"
        "c.start_training = boom\n"
        "from lstmctl.cli import main\n"
        "main()\n"
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    r = subprocess.run(
        [sys.executable, "-c", code, "train", str(cfg)], capture_output=True, text=True, cwd=tmp_path,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert r.returncode == 1
    assert "RuntimeError" in r.stderr and "a bug" in r.stderr
    assert "TOPSECRETVALUE" not in r.stderr and "locals" not in r.stderr
