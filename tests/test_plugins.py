"""User code without a fork: a dataset and a model in a module named under `plugins:`, or
installed as an entry point (groups lstmctl.datasets / lstmctl.models), trained and evaluated
through the real command line; and what a broken or clashing plugin looks like (one line, exit 2).
"""

import csv
import importlib
import json
import sys
import textwrap

import pytest
import torch
import yaml

from lstmctl import config
from lstmctl.errors import ConfigError
from lstmctl.registry import DATASETS, MODELS, load_plugins
from tests.conftest import run_lstmctl

# What a user writes, following the docs' recipes: a dataset (its Strict parameters, a builder
# that returns a DataBundle and saves what it fitted) and a model (nn.GRU under lstmctl's head).
PLUGIN = '''
"""ramp_mean and tiny_gru: a dataset and a model of my own, for lstmctl's `plugins: [my_rnn]`."""

import torch
from pydantic import Field
from torch import nn

from lstmctl.data.base import DataBundle, Split, Task
from lstmctl.models.base import SequenceModel
from lstmctl.registry import register_dataset, register_model
from lstmctl.schema import Strict


class RampParams(Strict):
    sequences: int = Field(32, ge=4, le=100_000, description="how many sequences")
    steps: int = Field(12, ge=2, le=10_000, description="time steps per sequence")


@register_dataset("ramp_mean", RampParams)
def build_ramp(p: RampParams, *, seed: int, val_fraction: float = 0.0, state: dict | None = None) -> DataBundle:
    """Per-sequence regression: the mean of a random sequence, centred on the training mean."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(p.sequences, p.steps, 1, generator=g)
    y = x.mean(dim=1)
    n = p.sequences * 3 // 4
    # fitted on the training split; a reopened run gets the saved number back in `state`
    offset = state["target_scale"]["offset"][0] if state else float(y[:n].mean())
    y = y - offset
    return DataBundle(
        task=Task.REGRESSION_SEQ,
        train=Split(x[:n], y[:n]),
        test=Split(x[n:], y[n:]),
        input_size=1,
        output_size=1,
        state={"target_scale": {"scale": [1.0], "offset": [offset]}},
    )


class TinyGRUParams(Strict):
    hidden_size: int = Field(8, ge=1, le=4096, description="GRU units")


@register_model("tiny_gru", TinyGRUParams)
def build_tiny_gru(p: TinyGRUParams, input_size: int, output_size: int, task: Task) -> nn.Module:
    """One nn.GRU layer with lstmctl's head (per step or on the final state, by the task)."""
    gru = nn.GRU(input_size, p.hidden_size, batch_first=True)
    return SequenceModel(gru, p.hidden_size, output_size, task, bidirectional=False)
'''

CFG = {
    "name": "ramp",
    "seed": 3,
    "device": "cpu",
    "data": {"name": "ramp_mean", "sequences": 24},
    "model": {"name": "tiny_gru", "hidden_size": 6},
    "train": {"epochs": 3, "batch_size": 8},
}


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder / name


def write_cfg(folder, name="cfg.yaml", **top):
    return write(folder, name, yaml.safe_dump({**CFG, **top}, sort_keys=False))


def one_line_exit_2(r) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def expected_offset(seed=3, sequences=24, steps=12) -> float:
    x = torch.rand(sequences, steps, 1, generator=torch.Generator().manual_seed(seed))
    return float(x.mean(dim=1)[: sequences * 3 // 4].mean())


# ---------------------------------------------------------------- through the command line


def test_a_plugin_beside_the_config_trains_and_evaluates_from_anywhere(tmp_path, runs_dir):
    project = tmp_path / "project"  # not the working directory: found because it is the config's folder
    write(project, "my_rnn.py", PLUGIN)
    cfg = write_cfg(project, plugins=["my_rnn"])
    r = run_lstmctl("train", cfg, "--quiet", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]

    info = json.loads((run / "run.json").read_text())
    assert (info["dataset"], info["model"], info["task"]) == ("ramp_mean", "tiny_gru", "regression_seq")
    assert info["status"] == "completed"
    assert info["params"] == sum(p.numel() for p in torch.nn.GRU(1, 6).parameters()) + 6 + 1
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and all(float(r["train_loss"]) >= 0 for r in rows)
    # the plugin's builder made the data: what it fitted is in the run
    state = json.loads((run / "data_state.json").read_text())
    assert state["target_scale"]["offset"][0] == pytest.approx(expected_offset(), abs=1e-6)

    # the saved config names the plugin and where it was found, so eval re-imports it from anywhere
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["plugins"] == ["my_rnn"] and saved["plugin_dir"] == str(project.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run_lstmctl("eval", "latest", "--json", cwd=elsewhere, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["task"] == "regression_seq" and result["split"] == "test"
    assert set(result["metrics"]) >= {"mse", "rmse", "mae"} and result["metrics"]["mse"] >= 0


def test_a_plugin_that_fails_to_import_is_one_line(tmp_path):
    write(tmp_path, "broken.py", """
        from lstmctl.registry import register_dataset

        SCALE = 1 / 0
    """)
    cfg = write_cfg(tmp_path, plugins=["broken"])
    line = one_line_exit_2(run_lstmctl("train", cfg))
    assert line.startswith("error: plugin 'broken' failed to import: ZeroDivisionError: division by zero (broken.py:3)")
    assert line.endswith("fix the module, or remove it from plugins:")


def test_a_plugin_that_takes_a_built_in_name_is_one_line(tmp_path):
    write(tmp_path, "clash.py", """
        from lstmctl.registry import register_dataset
        from lstmctl.schema import Strict


        class P(Strict):
            pass


        @register_dataset("sine_cosine", P)
        def build(p, *, seed, val_fraction=0.0, state=None):
            raise AssertionError("never built")
    """)
    cfg = write_cfg(tmp_path, plugins=["clash"])
    line = one_line_exit_2(run_lstmctl("train", cfg))
    assert line == (
        "error: plugin 'clash': dataset 'sine_cosine' is already registered by lstmctl.data.sine; "
        "register yours under another name"
    )


def make_dist(site, *, entry_points: str, module: str | None = None, name="ramp-plugin"):
    """An installed distribution as importlib.metadata sees one: a .dist-info folder on sys.path."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points).lstrip())
    if module is not None:
        (site / "ramp_plugin.py").write_text(module)
    return {"PYTHONPATH": str(site)}


def test_entry_points_register_without_a_plugins_key(tmp_path, runs_dir):
    env = make_dist(
        tmp_path / "site",
        module=PLUGIN,
        entry_points="""
            [lstmctl.datasets]
            ramp = ramp_plugin

            [lstmctl.models]
            tiny = ramp_plugin
        """,
    )
    r = run_lstmctl("config", "schema", env=env)
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    titles = {o["title"] for s in ("data", "model") for o in schema["properties"][s]["oneOf"]}
    assert {"data: ramp_mean", "model: tiny_gru", "data: sine_cosine", "model: lstm"} <= titles

    cfg = write_cfg(tmp_path / "project")  # no plugins: key; the installed package provides both
    r = run_lstmctl("train", cfg, "--quiet", "--set", "train.epochs=1", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    info = json.loads((run / "run.json").read_text())
    assert (info["dataset"], info["model"], info["status"]) == ("ramp_mean", "tiny_gru", "completed")
    assert "plugins" not in yaml.safe_load((run / "config.yaml").read_text())


def test_a_broken_entry_point_names_its_package(tmp_path):
    env = make_dist(tmp_path / "site", entry_points="[lstmctl.models]\nghost = no_such_module_here\n", name="ghost-models")
    line = one_line_exit_2(run_lstmctl("config", "validate", write_cfg(tmp_path), env=env))
    assert line == (
        "error: entry point 'ghost' (group lstmctl.models, module 'no_such_module_here', installed by ghost-models) "
        "not found: no installed module of that name; reinstall ghost-models, or uninstall it"
    )


# ---------------------------------------------------------------- in this process


@pytest.fixture
def clean_registry():
    """Plugins imported here leave nothing behind: registries and sys.modules as they were."""
    saved = dict(DATASETS._entries), dict(MODELS._entries)
    modules = set(sys.modules)
    yield
    DATASETS._entries.clear()
    DATASETS._entries.update(saved[0])
    MODELS._entries.clear()
    MODELS._entries.update(saved[1])
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def test_config_load_imports_the_plugin_and_keeps_it_in_the_resolved_config(tmp_path, clean_registry):
    write(tmp_path / "p", "plugin_load_a.py", PLUGIN)
    cfg = config.load(write_cfg(tmp_path / "p", plugins=["plugin_load_a"]))
    assert cfg.data == {"name": "ramp_mean", "sequences": 24, "steps": 12}
    assert cfg.plugins == ["plugin_load_a"] and cfg.plugin_dir == str((tmp_path / "p").resolve())
    assert str(tmp_path / "p") not in sys.path  # on sys.path only while importing
    again = config.loads(config.dump(cfg))
    assert again == cfg and "plugin_dir" in config.dump(cfg)


def test_a_config_without_plugins_saves_as_before(write_config):
    text = config.dump(config.load(write_config()))
    assert "plugins" not in text and "plugin_dir" not in text


def test_plugin_dir_is_relative_to_the_config_file(tmp_path, clean_registry):
    write(tmp_path / "lib", "plugin_load_b.py", PLUGIN)
    cfg = config.load(write_cfg(tmp_path / "configs", plugins=["plugin_load_b"], plugin_dir="../lib"))
    assert cfg.plugin_dir == str((tmp_path / "lib").resolve()) and cfg.model["name"] == "tiny_gru"


def test_importing_a_plugin_module_twice_is_no_error(tmp_path, clean_registry, monkeypatch):
    """A module imported again (here: dropped from sys.modules, then reloaded) registers the same
    functions again: no 'already registered' error, the newer functions are used."""
    write(tmp_path, "plugin_twice.py", PLUGIN)
    load_plugins(["plugin_twice"], tmp_path)
    first = DATASETS.get("ramp_mean").builder
    del sys.modules["plugin_twice"]
    load_plugins(["plugin_twice"], tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # reload finds the module again through sys.path
    importlib.reload(sys.modules["plugin_twice"])
    assert DATASETS.get("ramp_mean").builder is not first
    assert DATASETS.get("ramp_mean").builder is sys.modules["plugin_twice"].build_ramp


@pytest.mark.parametrize(
    "plugins, files, message",
    [
        (["nowhere_mod"], {}, "plugin 'nowhere_mod' not found: no nowhere_mod.py in {dir}, and no installed module of that name; "
         "check the name under plugins:, or install the package that provides it"),
        (["needs_dep"], {"needs_dep.py": "import surely_not_installed_dep\n"},
         "plugin 'needs_dep' failed to import: ModuleNotFoundError: No module named 'surely_not_installed_dep' "
         "(needs_dep.py:1); install surely_not_installed_dep or fix the import"),
        (["bad_syntax"], {"bad_syntax.py": "x = (\n"}, "plugin 'bad_syntax' failed to import: SyntaxError: "),
        (["twice_a", "twice_b"], {"twice_a.py": PLUGIN, "twice_b.py": PLUGIN},
         "plugin 'twice_b': dataset 'ramp_mean' is already registered by twice_a; register yours under another name"),
        (["my_rnn.py"], {}, "config error: plugins: Value error, 'my_rnn.py' is a file name; write the module name, 'my_rnn'"),
        (["my-rnn"], {}, "config error: plugins: Value error, 'my-rnn' is not a module name"),
    ],
    ids=["missing", "missing-dependency", "syntax", "two-plugins-one-name", "file-name", "not-a-name"],
)
def test_plugin_errors_name_the_plugin_and_the_fix(tmp_path, clean_registry, plugins, files, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        config.load(write_cfg(tmp_path, plugins=plugins))
    assert str(e.value).startswith(message.format(dir=tmp_path.resolve())), str(e.value)
    assert "\n" not in str(e.value)
