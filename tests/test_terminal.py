"""Readable in an 80-column terminal and in a log file (issue 17).

Every command that prints a table is rendered at 80 and at 200 columns, the width forced as a real
terminal gives it (COLUMNS, and TTY_COMPATIBLE=1: rich's switch for "this is a terminal"; one test
runs `lstmctl runs` on a real pseudo-terminal of 80 columns), and with output to a file. On a terminal:
no line longer than the width, no run id split or cut, every header word whole. In a file: nothing
wrapped or cut, every column, and the opening line of `train` whole. The runs are trained once per
module; the figures of compare and inspect are not drawn (they are not what is tested here).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import sys
import termios
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest
import yaml
from rich.cells import cell_len
from typer.testing import CliRunner

from lstmctl.cli import app
from lstmctl.commands import compare as compare_command
from lstmctl.commands import inspect as inspect_command
from lstmctl.commands import sweep as sweep_command
from lstmctl.commands.output import ID, NUM, Col, fit
from tests.conftest import TINY

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ID_TOKEN = re.compile(r"\d{8}-\d{6}[\w-]*")  # a run, group or sweep id as printed; a cut one ends early or in …
SWEEP_ID = "20261129-101500"


def invoke(*args, width: int | None = None, wide: bool = False, **env) -> tuple[str, str]:
    """(stdout, stderr) of the CLI; `width`: on a terminal that wide, None: into a file."""
    env = {"COLUMNS": str(width or 80), "TTY_COMPATIBLE": "1" if width else "0", "NO_COLOR": "1", **env}
    result = CliRunner().invoke(app, [str(a) for a in args] + (["--wide"] if wide else []), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """Two runs with long names (the first evaluated), two groups of two seeds (evaluated), a damaged
    directory; tiny, trained in this process once for every test of the module."""
    root = tmp_path_factory.mktemp("terminal")
    runs = root / "runs"

    def train(name: str, *extra: str) -> dict:
        cfg = yaml.safe_load(yaml.safe_dump(TINY))
        cfg["name"], cfg["train"]["val_fraction"] = name, 0.25
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out, _ = invoke("train", path, "--quiet", "--json", "--runs-dir", runs, *extra)
        return json.loads(out)

    a = train("sin2cos_lstm_baseline")["run"]
    b = train("sin2cos_lstm_higher_lr", "--set", "train.lr=0.03")["run"]
    g1 = train("sin2cos_seeds", "--seeds", "2")
    g2 = train("sin2cos_seeds_fast", "--seeds", "2", "--set", "train.lr=0.03")
    for ref in (a, g1["group"], g2["group"]):
        invoke("eval", ref, "--runs-dir", runs)
    (runs / "20261129-000000-broken").mkdir()
    ids = {a, b, g1["group"], g2["group"], *g1["runs"], *g2["runs"], "20261129-000000-broken", SWEEP_ID}
    return {"runs": runs, "a": a, "b": b, "g1": g1, "g2": g2, "ids": ids, "root": root}


@pytest.fixture
def no_figures(monkeypatch, built):
    monkeypatch.chdir(built["root"])  # run dirs print as runs/ID, as with the default --runs-dir
    monkeypatch.setattr(compare_command, "plot_compare", lambda runs, out, fmt: out)
    monkeypatch.setattr(compare_command, "plot_compare_groups", lambda groups, out, fmt: out)
    monkeypatch.setattr(inspect_command, "plot_inspection", lambda opened, insp, folder, fmt: [])
    results = [{"run": r, "model.hidden_size": h, "train.lr": lr, "monitor": "val_loss", "mode": "min", "best": v,
                "best_epoch": 3, "epochs_done": 3} for r, h, lr, v in
               [(built["a"], "16", "0.01", 0.5034), (built["b"], "8", "0.03", 0.6123)]]
    monkeypatch.setattr(sweep_command, "run_sweep", lambda *a, **k: {"sweep": SWEEP_ID, "study": f"sweep-{SWEEP_ID}",
                                                                     "csv": f"sweep-{SWEEP_ID}.csv", "results": results, "failed": []})


COMMANDS = {  # name: the arguments, from the runs built once
    "runs": lambda b: ["runs"],
    "runs --all": lambda b: ["runs", "--all"],
    "show": lambda b: ["show", b["a"]],
    "show GROUP": lambda b: ["show", b["g1"]["group"]],
    "eval": lambda b: ["eval", b["a"]],
    "eval GROUP": lambda b: ["eval", b["g1"]["group"]],
    "compare": lambda b: ["compare", b["a"], b["b"]],
    "compare 4 runs": lambda b: ["compare", b["a"], b["b"], *b["g2"]["runs"]],
    "compare GROUP GROUP": lambda b: ["compare", b["g1"]["group"], b["g2"]["group"]],
    "sweep": lambda b: ["sweep", "cfg.yaml", "--grid", "model.hidden_size=8,16", "--grid", "train.lr=0.01,0.03"],
    "inspect": lambda b: ["inspect", b["a"]],
}
WIDE = {"runs", "runs --all", "show", "show GROUP", "eval", "eval GROUP", "compare", "compare 4 runs", "compare GROUP GROUP"}


def args_of(name: str, built: dict) -> list:
    return [*COMMANDS[name](built), "--runs-dir", "runs"]


def header_cells(text: str) -> list[str]:
    """The headers of every table in `text`: the lines between ┏ and ┡, joined per column."""
    headers, block = [], None
    for line in text.splitlines():
        if line.startswith("┏"):
            block = []
        elif line.startswith("┡") and block is not None:
            columns = zip(*[[c.strip() for c in row.strip("┃").split("┃")] for row in block])
            headers += [" ".join(p for p in col if p) for col in columns]
            block = None
        elif block is not None:
            block.append(line)
    return headers


def check_terminal(text: str, width: int, ids: set[str], full_headers: list[str]) -> None:
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} columns on a terminal of {width}:\n{line}\n\n{text}"
        for token in ID_TOKEN.findall(line):
            assert token in ids, f"run id {token!r} split or cut:\n{text}"
    known = {w for h in full_headers for w in h.split()}
    for header in header_cells(text):
        assert "…" not in header, f"header {header!r} cut:\n{text}"
        legend = re.search(rf"^{re.escape(header)}: \d{{8}}-", text, re.M)  # `run 1: ID` above the table
        assert legend or set(header.split()) <= known, f"header {header!r} broken inside a word:\n{text}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_fits_80_and_200_columns_and_a_file_gets_everything(name, built, no_figures):
    args = args_of(name, built)
    in_file, _ = invoke(*args)
    assert "…" not in in_file and "left out" not in in_file, in_file
    full_headers = header_cells(in_file)
    for ident in ID_TOKEN.findall(in_file):
        assert ident in built["ids"], ident
    rows = [line for line in in_file.splitlines() if line.startswith("│")]
    assert all(line.endswith("│") for line in rows), in_file  # a row is one line: nothing wrapped in a file
    for width in (80, 200):
        text, _ = invoke(*args, width=width)
        check_terminal(text, width, built["ids"], full_headers)
        if width == 200 and max(map(cell_len, in_file.splitlines())) <= 200:  # room for everything: today's full view
            assert "left out" not in text and header_cells(text) == full_headers, text
    if name in WIDE:
        wide, _ = invoke(*args, width=80, wide=True)
        assert header_cells(wide) == full_headers and "left out" not in wide, wide


def test_runs_at_80_columns_keeps_the_important_columns(built):
    text, _ = invoke("runs", "--runs-dir", built["runs"], width=80)
    assert header_cells(text)[:3] == ["id", "status", "best val_loss (min)"], text
    assert "(left out to fit 80 columns: " in text and "--wide shows them" in text
    assert f"{built['g1']['group']} " in text and "2 completed" in text  # a group: its id whole, its runs in the status
    assert len(text.splitlines()) <= 16, text  # a line a run, not 17 lines a run


def test_show_prints_best_as_words(built):
    text, _ = invoke("show", built["a"], "--runs-dir", built["runs"], width=80)
    info = json.loads((built["runs"] / built["a"] / "run.json").read_text())
    assert re.search(rf"│ best +│ val_loss {info['best']['value']:.4g} at epoch {info['best']['epoch']} \(min\) +│", text), text
    assert '"epoch"' not in text and "{" not in text


def test_train_opening_line_and_errors_stay_one_line_in_a_file(built, tmp_path):
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["name"], cfg["train"]["epochs"] = "a_long_descriptive_experiment_name_for_the_log_file", 1
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out, err = invoke("train", path, "--runs-dir", tmp_path / "runs", COLUMNS="40")
    run_id = out.split("run id:")[1].split()[0]
    (opening,) = [line for line in err.splitlines() if line.startswith(run_id + ":")]
    assert opening.endswith("training sequences") and len(opening) > 80, err
    result = CliRunner().invoke(app, ["show", "a-run-that-does-not-exist-" * 4, "--runs-dir", tmp_path / "runs"],
                                env={"COLUMNS": "40", "TTY_COMPATIBLE": "0"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and len(lines[0]) > 40, result.stderr


@contextmanager
def pseudo_terminal(columns: int, lines: int = 24) -> Iterator[list[bytes]]:
    """stdin, stdout and stderr on a pseudo-terminal of `columns` x `lines` (what a terminal window gives a
    program: isatty() true, the size from the terminal itself); yields what was written to it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    written: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every copy of the other side is closed
                return
            if not data:
                return
            written.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    streams = sys.stdin, sys.stdout, sys.stderr
    try:
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        sys.stdout = sys.stderr = open(1, "w", encoding="utf-8", closefd=False)
        yield written
        sys.stdout.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        for fd, copy in zip((0, 1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)


def test_a_real_80_column_terminal(built, monkeypatch):
    """`lstmctl runs` and `show` on a pseudo-terminal of 80x24, the width from the terminal (no COLUMNS)."""
    for var in ("COLUMNS", "LINES", "TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    for args in (["runs"], ["show", built["g1"]["group"]]):
        args = [*args, "--runs-dir", str(built["runs"])]
        with pseudo_terminal(80) as written:
            app(args, prog_name="lstmctl", standalone_mode=False)
        text = ANSI.sub("", b"".join(written).decode()).replace("\r", "")
        check_terminal(text, 80, built["ids"], header_cells(invoke(*args)[0]))
        assert "left out to fit 80 columns" in text or args[0] == "show", text


def test_fit_leaves_out_the_least_important_columns_first():
    cols = [Col("id", 0, ID), Col("name", 3), Col("status", 1, NUM), Col("a long header", 2, NUM), Col("empty", 1, NUM)]
    rows = [["20261129-101500-some_name", "a_name_much_longer_than_the_rest", "completed", "0.5", "—"], None, ["x", "y", "z", "1", "—"]]
    assert fit(cols, rows, 10_000) == ([0, 1, 2, 3, 4], {0: 25, 1: 32, 2: 9, 3: 13, 4: 5})  # a file: everything
    shown, widths = fit(cols, rows, 77)
    assert shown == [0, 1, 2, 3] and widths[1] == 24 and widths[3] == 6  # the name cut, the header on two lines
    shown, widths = fit(cols, rows, 76)
    assert shown == [0, 2, 3] and widths[3] == 13  # no room for the name: left out, the header on one line
    assert fit(cols, rows, 10)[0] == [0]  # the id, whatever the width
