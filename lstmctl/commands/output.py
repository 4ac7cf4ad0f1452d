"""Output shared by the commands: the table console, tables that fit their terminal, number formatting,
JSON, the end of a training.

Conventions: tables and results for people go to stdout through `console()` (tables through
`print_table`), --json prints one JSON document on stdout, progress and notes go to stderr (`say`).
On a terminal a table fits its width: the less important columns are left out, long text is cut with
an ellipsis, ids and numbers are never wrapped or cut. Anywhere else (a file, a pipe) nothing is
wrapped or cut: every column, every line as long as its content.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lstmctl.errors import UserError
from lstmctl.runs import RunDir

HEADLINE = {"classification": "accuracy", "classification_step": "accuracy"}  # regression: mse


def headline_key(task: str | None) -> str:
    """The metric a result is judged by: test accuracy for classification, test mse otherwise."""
    return HEADLINE.get(task or "", "mse")


UNWRAPPED = 100_000  # the width of a file or a pipe: no line is ever wrapped


def console() -> Console:
    """stdout for people. A terminal (rich's test: a tty, or TTY_COMPATIBLE=1): its width, COLUMNS
    if set. A file or a pipe: no width at all, so a line is never wrapped and a table is as wide as its
    content."""
    con = Console()
    return con if con.is_terminal else Console(width=UNWRAPPED)


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def print_json(data: Any) -> None:
    print(json.dumps(data, default=str))


def say(text: str) -> None:
    """A line for people on stderr (notes, warnings, progress), flushed at once."""
    print(text, file=sys.stderr, flush=True)


def training_done(run: RunDir, summary: dict | None, *, json_out: bool, message: str | None = None) -> None:
    """How train and resume end: JSON, or the "finished ..." line on stderr and where the run is on stdout.

    `summary` None (a resume with nothing to train) prints `message` in place of the finished line.
    """
    if json_out:
        print_json({"run": run.id, "run_dir": str(run.path), **({} if message is None else {"message": message}), **(summary or {})})
        return
    if summary is None:
        say(message or "")
    else:
        say(finished_line(run, summary))
    print(f"run id:  {run.id}")
    print(f"run dir: {run.path}")


def finished_line(run: RunDir, summary: dict) -> str:
    """"finished RUN: N epochs (why), best MONITOR VALUE at epoch E": how a training ends, for people."""
    best = summary["best"]
    best_txt = f"best {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}" if best["value"] is not None else "no finite loss"
    return f"finished {run.id}: {summary['epochs_done']} epochs ({summary['stop_reason']}), {best_txt}"


# ---------------------------------------------------------------- one run, summed up (runs, compare)


def read_eval(run: RunDir) -> dict | None:
    try:
        return json.loads(run.eval_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def headline(run: RunDir, task: str | None) -> tuple[str, float] | None:
    """The metric a table shows for a run: (e.g. "test mse", value) from its eval.json, if any."""
    ev = read_eval(run)
    if not ev or not isinstance(ev.get("metrics"), dict):
        return None
    key = headline_key(task or ev.get("task", ""))
    value = ev["metrics"].get(key)
    return (f"{ev.get('split', 'test')} {key}", value) if isinstance(value, (int, float)) else None


def _duration(info: dict) -> float | None:
    try:
        start = datetime.fromisoformat(info["started"])
        end = datetime.fromisoformat(info["ended"]) if info.get("ended") else None
    except (KeyError, TypeError, ValueError):
        return None
    if end is None:
        return None
    return round((end - start).total_seconds(), 3)


def run_row(run: RunDir) -> dict[str, Any]:
    """One line of `lstmctl runs`; a damaged directory is a row with status 'damaged', not a crash."""
    try:
        info = run.info()
        if not isinstance(info, dict):
            raise UserError("run.json is not an object")
    except UserError as e:
        return {"id": run.id, "kind": "run", "status": "damaged", "problem": str(e)}
    best = info.get("best") if isinstance(info.get("best"), dict) else {}
    head = headline(run, info.get("task"))
    return {
        "id": run.id,
        "kind": "run",
        "group": info.get("group"),
        "seed": info.get("seed"),
        "name": info.get("name"),
        "dataset": info.get("dataset"),
        "model": info.get("model"),
        "status": run.status(info),
        "epochs_done": info.get("epochs_done"),
        "epochs": info.get("epochs"),
        "best_monitor": best.get("monitor"),
        "best_mode": best_mode(best),
        "best_value": best.get("value"),
        "best_epoch": best.get("epoch"),
        "metric": head[0] if head else None,
        "metric_value": head[1] if head else None,
        "created": info.get("created"),
        "duration_s": _duration(info),
        "sweep": info.get("sweep"),
    }


def best_mode(best: dict) -> str | None:
    """run.json best's mode: "min" or "max"; runs written before monitors had modes watched a loss (min)."""
    if not best.get("monitor"):
        return None
    return best.get("mode") if best.get("mode") in ("min", "max") else "min"


def monitor_cell(row: dict) -> str:
    """The monitored metric and which way is better, e.g. "val_accuracy (max)"."""
    return f"{row['best_monitor']} ({row['best_mode']})" if row.get("best_monitor") else "—"


def mean_std(s: dict | None, digits: int = 4) -> str:
    """A summarize() result as "mean ± std" ("mean" alone for one value, "—" for none)."""
    if not s or s.get("mean") is None:
        return "—"
    return fmt(s["mean"], digits) + ("" if s.get("std") is None else f" ± {fmt(s['std'], 2)}")


def interval(ci: list | None, digits: int = 4) -> str:
    return "—" if not ci else f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def stats_rows(metrics: dict[str, dict], label: str = "metric") -> tuple[list[Col], list[list[str]]]:
    """One row per aggregated metric: mean, std (ddof=1), the 95% interval of the mean (Student's t), n."""
    cols = [Col(label, kind=TEXT, min=16), Col("mean", 1, NUM, "right"), Col("std", 3, NUM, "right"),
            Col("95% interval", 2, NUM, "right"), Col("n", 4, NUM, "right")]
    rows = [[escape(name), fmt(s["mean"], 6), fmt(s["std"], 3), interval(s["ci95"]), str(s["n"])] for name, s in metrics.items()]
    return cols, rows


def print_stats(metrics: dict[str, dict], title: str | None = None, label: str = "metric") -> None:
    print_table(*stats_rows(metrics, label), title=title)


# ---------------------------------------------------------------- tables that fit their terminal

ID, NUM, TEXT, WORDS = "id", "num", "text", "words"
_wide = [False]


@dataclass(frozen=True)
class Col:
    """A column of `print_table`. `rank`: its importance, 0 = always shown; on a narrow terminal the
    columns of the highest rank are left out first. `kind`: ID and NUM cells are never wrapped nor cut;
    TEXT is cut with an ellipsis (never below `min` characters); WORDS wraps between words. A header
    may wrap between its words, never inside one."""

    header: str
    rank: int = 0
    kind: str = TEXT
    justify: str = "left"
    min: int = 10


@contextmanager
def wide_tables(on: bool = True) -> Iterator[None]:
    """--wide: within this block every table prints every column, whatever the terminal's width."""
    before, _wide[0] = _wide[0], on
    try:
        yield
    finally:
        _wide[0] = before


def tables_wide() -> bool:
    """Whether --wide is on (see wide_tables)."""
    return _wide[0]


def _plain(cell: str | Text) -> str:
    return (cell if isinstance(cell, Text) else Text.from_markup(cell)).plain


def _width(cell: str | Text) -> int:
    return max((Text(line).cell_len for line in _plain(cell).splitlines()), default=0)


def _floor(col: Col, cells: int) -> int:
    """The narrowest a column may get: its longest header word, and all of an id or a number."""
    word = max((Text(w).cell_len for w in col.header.split()), default=1)
    return max(word, cells if col.kind in (ID, NUM) else min(cells, col.min))


def table_width(widths: Sequence[int]) -> int:
    """The width of a table with the default box: a border and a space either side of each column."""
    return sum(widths) + 3 * len(widths) + 1


def fit(cols: Sequence[Col], rows: Sequence[Sequence[str | Text] | None], width: int) -> tuple[list[int], dict[int, int]]:
    """(the columns shown, in their order; the width of each) for a terminal `width` columns wide.

    Columns are taken in order of importance (rank; a column with nothing in it last) as long as they
    fit at a comfortable width (TEXT up to 24 characters); from the first that does not, the rest are
    left out. Then each shown column grows to its content's width, the most important first, as far
    as the width allows. Rank-0 columns are always shown."""
    body = [r for r in rows if r is not None]
    cells = [max([_width(r[i]) for r in body], default=0) for i in range(len(cols))]
    natural = [max(n, _width(Text(c.header))) for c, n in zip(cols, cells)]  # the header on one line
    floor = [_floor(c, n) for c, n in zip(cols, cells)]
    want = [f if c.kind in (ID, NUM) else max(f, min(n, 24)) for c, n, f in zip(cols, cells, floor)]
    empty = [all(_plain(r[i]) in ("", "—") for r in body) for i in range(len(cols))]
    order = sorted(range(len(cols)), key=lambda i: (cols[i].rank > 0 and empty[i], cols[i].rank, i))
    shown = [i for i in order if cols[i].rank == 0]
    for i in (i for i in order if cols[i].rank > 0):
        if table_width([want[j] for j in shown + [i]]) > width:
            break
        shown.append(i)
    widths = {i: floor[i] for i in shown}
    for target in (want, natural):
        for i in (j for j in order if j in widths):
            spare = width - table_width(list(widths.values()))
            widths[i] = max(widths[i], min(target[i], widths[i] + max(spare, 0)))
    return sorted(shown), widths


def _forms(rows: Sequence[Sequence[Any] | None], k: int) -> list:
    return [None if r is None else [c[k] if isinstance(c, tuple) else c for c in r] for r in rows]


def print_table(cols: Sequence[Col], rows: Sequence[Sequence[Any] | None], *, title: str | None = None,
                wide: bool | None = None, more: str = "--wide shows them", con: Console | None = None, **options) -> list[str]:
    """Print a table that fits the terminal (see `fit`); anywhere else, or with --wide (`wide_tables`),
    every column at its content's width. A cell is a markup string (escape user text), a Text, or a
    pair (full, short): the short form when the full table does not fit. None starts a new section.
    Returns the headers left out, named after the table with `more`."""
    con = con or console()
    everything = (_wide[0] if wide is None else wide) or not con.is_terminal
    width = con.width
    cells = _forms(rows, 0)
    shown, widths = fit(cols, cells, UNWRAPPED if everything else width)
    if not everything and (len(shown) < len(cols) or table_width(list(widths.values())) > width):
        cells = _forms(rows, 1)  # too narrow for the whole table: the short forms, then fit again
        shown, widths = fit(cols, cells, width)
    table = Table(**options)
    for i in shown:
        c = cols[i]
        table.add_column(Text(c.header, no_wrap=False, overflow="fold"), justify=c.justify, width=widths[i],
                         no_wrap=c.kind != WORDS, overflow="ellipsis")
    for r in cells:
        if r is None:
            table.add_section()
        else:
            table.add_row(*[r[i] for i in shown])
    total = table_width(list(widths.values()))
    if title and Text.from_markup(title).cell_len > total:
        con.print(title, style="table.title")  # a title wider than its table stays one line, not a column
    elif title:
        table.title = title
    if total > width:  # --wide on a terminal: the table at its own width, the terminal folds its lines
        con = Console(file=con.file, width=total, force_terminal=con.is_terminal, color_system=con.color_system)
    con.print(table)
    left_out = [cols[i].header for i in range(len(cols)) if i not in widths]
    if left_out and any(r is not None for r in cells):
        con.print(f"(left out to fit {width} columns: {', '.join(left_out)}; {more})", style="dim", highlight=False, markup=False)
    return left_out
