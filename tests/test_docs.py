"""The docs are part of the product: the README stays a short front door, docs/ stays true to the code.

README.md <= 15 KB with the two set-up commands; docs/commands.md names every CLI command;
docs/configs.md holds the config reference tools/reference.py generates; mkdocs.yml lists every
page and CI builds the site with --strict; the contributing recipes run as written.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.main import get_command

from lstmctl.cli import app
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
README_LIMIT = 15_000  # bytes: the "at most 15 KB", without counting a KB as 1024
SETUP_TRAIN = "lstmctl train configs/sin2cos.yaml"
SETUP_TEST = "pip install -e '.[test,tensorboard]' && python -m pytest -q"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _reference():
    spec = importlib.util.spec_from_file_location("reference", REPO / "tools" / "reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a page, dedented (blocks inside list items are indented)."""
    fence = re.compile(r"^( *)```[^\n]*\n(.*?)^\1```", re.M | re.S)
    return [textwrap.dedent(m.group(2)) for m in fence.finditer(markdown)]


def _block(markdown: str, marker: str) -> str:
    found = [b for b in _code_blocks(markdown) if marker in b]
    assert len(found) == 1, f"expected one code block containing {marker!r}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------- README


def test_readme_is_a_short_front_door():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"


def test_setup_commands():
    readme = _text(README)
    assert SETUP_TRAIN in readme
    assert SETUP_TEST in readme
    ci = _text(REPO / ".ci" / "run")
    assert "pip install -q -e '.[test,tensorboard,docs]'" in ci
    assert "python -m pytest -q" in ci


def test_ci_installs_only_extras_the_project_declares():
    """.ci/run's `pip install -e '.[...]'` names extras pyproject.toml has (pip only warns otherwise)."""
    import tomllib

    declared = set(tomllib.loads(_text(REPO / "pyproject.toml"))["project"]["optional-dependencies"])
    (extras,) = re.findall(r"pip install -q -e '\.\[([\w,]+)\]'", _text(REPO / ".ci" / "run"))
    missing = set(extras.split(",")) - declared
    assert not missing, f".ci/run installs extras pyproject.toml does not declare: {sorted(missing)}"
    assert "docs" in extras.split(","), "CI needs the docs extra for mkdocs build --strict"


def test_readme_links_point_at_files():
    """Relative links and images in the README resolve (they are what GitHub shows)."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _text(README))
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to no docs page"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
    assert "docs/sin2cos-predictions.png" in local


def test_readme_links_every_docs_page():
    readme = _text(README)
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"README does not link to {unlinked}"


# ---------------------------------------------------------------- docs/ against the code


def test_every_command_is_documented():
    page = _text(DOCS / "commands.md")
    group = get_command(app)
    missing = []
    for name, cmd in group.commands.items():
        subs = getattr(cmd, "commands", None)  # a group such as `config`
        for spelled in [f"lstmctl {name} {sub}" for sub in subs] if subs else [f"lstmctl {name}"]:
            if not re.search(re.escape(spelled) + r"\b", page):
                missing.append(spelled)
    assert not missing, f"docs/commands.md does not document {missing}"


def test_config_reference_is_current():
    ref = _reference()
    assert ref.TARGET == DOCS / "configs.md"
    assert ref.block(_text(ref.TARGET)) == ref.render(), (
        "docs/configs.md config reference is stale: run python tools/reference.py --write"
    )


def test_mkdocs_nav_lists_every_page_and_ci_builds_strict():
    config = _text(REPO / "mkdocs.yml")
    assert re.search(r"^theme:\s*\n\s+name:\s*material\s*$", config, re.M)
    nav = set(re.findall(r"^\s+- (?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", config, re.M))
    pages = {p.name for p in DOCS.glob("*.md")}
    assert nav == pages, f"not in nav: {sorted(pages - nav)}; in nav without a page: {sorted(nav - pages)}"
    ci = _text(REPO / ".ci" / "run")
    assert "mkdocs build --strict" in ci
    assert ci.index("mkdocs build --strict") < ci.index("python -m pytest -q"), "CI builds the docs before the tests"


def test_architecture_page_shows_the_layers():
    page = _text(DOCS / "architecture.md")
    for module in ("cli.py", "commands/", "plots/", "train/", "evaluation.py", "session.py", "runs.py",
                   "config.py", "registry.py", "errors.py", "schema.py"):
        assert module in page, module
        if module.endswith(".py"):
            assert (REPO / "lstmctl" / module).exists(), f"architecture.md names lstmctl/{module}, which does not exist"
        else:
            assert (REPO / "lstmctl" / module).is_dir(), f"architecture.md names lstmctl/{module}, which does not exist"


# ---------------------------------------------------------------- the contributing recipes, as written


def test_plugin_recipe_trains_through_the_cli(tmp_path):
    """docs/contributing.md's dataset + model plugin and its config, copied as they are, train."""
    page = _text(DOCS / "contributing.md")
    (tmp_path / "my_plugin.py").write_text(_block(page, "# my_plugin.py"), encoding="utf-8")
    (tmp_path / "running_sum.yaml").write_text(_block(page, "# running_sum.yaml"), encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    # A fresh process (the plugin registers into the process-wide registries), run from another
    # folder: the config's own folder is what puts my_plugin on the import path.
    done = subprocess.run(
        [sys.executable, "-m", "lstmctl", "train", str(tmp_path / "running_sum.yaml"), "--quiet",
         "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoints" / "best.pt").exists()
    assert "running_sum" in _text(run / "config.yaml") and "tiny_gru" in _text(run / "config.yaml")


def test_command_recipe_runs(cli, write_config, capsys):
    """The `lstmctl params` example of docs/contributing.md works against the real modules."""
    page = _text(DOCS / "contributing.md")
    module = _block(page, "# lstmctl/commands/params.py")
    declaration = _block(page, "# in lstmctl/cli.py")
    cli("train", write_config(), "--quiet")
    ns: dict = {"__name__": "recipe_params"}
    exec(compile(module, "params.py", "exec"), ns)
    capsys.readouterr()
    ns["params"]("latest")
    out = capsys.readouterr().out
    assert "backbone.weight_ih_l0" in out and "parameters" in out
    # The CLI declaration uses only names cli.py defines.
    import lstmctl.cli as cli_module

    used = set(re.findall(r"\b(RunRef|RunsDir|JsonOut|Debug|handled|app)\b", declaration))
    assert used and all(hasattr(cli_module, n) for n in used), used


def test_figure_recipe_draws(cli, write_config, tmp_path):
    """The facts type and figure of docs/contributing.md work with the real plots/tasks.py."""
    import lstmctl.plots.tasks as tasks
    from lstmctl.data.base import Facts
    from lstmctl.runs import find_run
    from lstmctl.session import open_run

    page = _text(DOCS / "contributing.md")
    ns = dict(vars(tasks))
    ns.update(dataclass=dataclass, Facts=Facts)
    exec(_block(page, "class RunningSumFacts"), ns)
    exec(_block(page, "def plot_running_sum"), ns)
    table = _block(page, "RunningSumFacts: plot_running_sum").replace("# ... the other figures ...", "")
    exec(table, ns)  # the FIGURES literal as the recipe writes it
    assert ns["FIGURES"][ns["RunningSumFacts"]] is ns["plot_running_sum"]
    assert all(isinstance(k, type) and issubclass(k, Facts) for k in tasks.FIGURES), "FIGURES maps facts types"
    assert tasks.figure_for(ns["RunningSumFacts"](steps=1)) is None  # the real table was left as it is

    cli("train", write_config(), "--quiet")
    opened = open_run(find_run("latest"))
    steps = opened.data.test.x.shape[1]
    (path,) = ns["plot_running_sum"](opened, ns["RunningSumFacts"](steps=steps), tmp_path, "png")
    assert path == tmp_path / "running_sum.png" and path.stat().st_size > 0


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_docs_do_not_point_at_the_old_layout(page):
    """Modules the restructure removed are not named as if they still existed."""
    text = _text(DOCS / page)
    for gone in ("lstmctl/experiment.py", "lstmctl/inference.py", "lstmctl/manage.py", "plots_tasks",
                 "meta[\"kind\"]", "lstmctl/commands.py", "lstmctl/resume.py"):
        assert gone not in text, f"{page} mentions {gone}"
