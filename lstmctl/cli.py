"""The command line. Parses, hands off to lstmctl.commands, maps errors to exit codes. No logic.

Heavy imports (torch, matplotlib) happen inside the command functions so that `--help` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from lstmctl.errors import EXIT_SIGINT, Interrupted, LstmctlError, UserError

app = typer.Typer(
    name="lstmctl",
    help="Train, evaluate and plot recurrent networks from YAML configs. Every run is kept in runs/<run_id>/.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print local variables (configs, tensors) in tracebacks
    add_completion=False,
    rich_markup_mode=None,
)

_state = {"debug": os.environ.get("LSTMCTL_DEBUG", "") not in ("", "0")}

RunsDir = Annotated[
    Optional[Path],
    typer.Option("--runs-dir", envvar="LSTMCTL_RUNS_DIR", help="Directory holding the runs (default ./runs)."),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Sets = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config key, e.g. --set train.lr=0.003 (value parsed as YAML). Repeatable."),
]
RunRef = Annotated[str, typer.Argument(help="Run id, a unique prefix of one, or 'latest'.")]


def _err(text: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(text)}")


@contextmanager
def handled(debug: bool = False):
    """Turn lstmctl's errors into one line on stderr and their exit code; --debug re-raises."""
    debug = debug or _state["debug"]
    try:
        yield
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        raise typer.Exit(e.exit_code)
    except LstmctlError as e:
        if debug:
            raise
        _err(str(e))
        raise typer.Exit(e.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        raise typer.Exit(EXIT_SIGINT)


@app.callback()
def _main(debug: Debug = False) -> None:
    """Train, evaluate and plot recurrent networks from YAML configs."""
    if debug:
        _state["debug"] = True


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config file, e.g. configs/sin2cos.yaml.")],
    set_: Sets = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    json_out: JsonOut = False,
    debug: Debug = False,
    nproc: Annotated[
        Optional[int],
        typer.Option("--nproc", help="Train with DDP on N processes of this machine (launches torchrun).", show_default=False),
    ] = None,
) -> None:
    """Train a model from a config file.

    Prints progress on stderr and, at the end, the run id and run directory.
    """
    with handled(debug):
        if nproc is not None:
            from lstmctl.train.distributed import launch

            raise typer.Exit(launch(nproc, config, set_, runs_dir, quiet, json_out, debug))
        from lstmctl import config as config_mod
        from lstmctl.commands import start_training

        cfg = config_mod.load(config, set_)
        run, summary = start_training(cfg, runs_dir, source=str(config), overrides=set_, quiet=quiet or json_out)
        if json_out:
            print(json.dumps({"run": run.id, "run_dir": str(run.path), **summary}, default=str))
            return
        best = summary["best"]
        best_txt = f"best {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}" if best["value"] is not None else "no finite loss"
        print(f"finished {run.id}: {summary['epochs_done']} epochs ({summary['stop_reason']}), {best_txt}", file=sys.stderr)
        print(f"run id:  {run.id}")
        print(f"run dir: {run.path}")


@app.command("eval")
def eval_(
    run: RunRef = "latest",
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="best or last.")] = "best",
    split: Annotated[str, typer.Option("--split", help="test, val or train.")] = "test",
    runs_dir: RunsDir = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Score a run's checkpoint on a split.

    Loads best.pt (or --checkpoint last), prints the metrics and writes eval.json in the run directory.
    """
    with handled(debug):
        from lstmctl.commands import evaluate, resolve

        if split not in ("test", "val", "train"):
            raise UserError(f"--split must be test, val or train, got {split!r}")
        rd = resolve(run, runs_dir)
        result = evaluate(rd, checkpoint, split)
        if json_out:
            print(json.dumps(result))
            return
        from rich.table import Table

        print(f"{rd.id}: {split} split, {checkpoint} checkpoint (epoch {result['epoch']})")
        table = Table()
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in result["metrics"].items():
            if isinstance(v, (int, float)) or v is None:
                table.add_row(k, "—" if v is None else f"{v:.6g}")
        _console().print(table)
        print(f"wrote {rd.eval_json}", file=sys.stderr)


@app.command()
def plot(
    run: RunRef = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf.")] = "png",
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="best or last.")] = "best",
    runs_dir: RunsDir = None,
    debug: Debug = False,
) -> None:
    """Write a run's figures into its plots/ folder.

    Loss curves for every run, and the prediction figures its task calls for; prints their paths.
    """
    with handled(debug):
        from lstmctl.commands import plot as do_plot
        from lstmctl.commands import resolve

        for p in do_plot(resolve(run, runs_dir), fmt, checkpoint):
            print(p)


def _console():
    """stdout for tables: the terminal's width, or wide enough not to fold when piped."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


@app.command("runs")
def runs_(
    runs_dir: RunsDir = None,
    status: Annotated[Optional[str], typer.Option("--status", help="Only runs with this status (running, completed, failed, interrupted, died, damaged).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Only runs whose name contains this (or matches this glob).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Show at most this many runs.")] = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """List the runs, newest first."""
    with handled(debug):
        from lstmctl.manage import runs_table

        rows = runs_table(runs_dir, status, name, limit)
        if json_out:
            print(json.dumps(rows))
            return
        from rich.table import Table

        table = Table(title=f"{len(rows)} run{'s' * (len(rows) != 1)}")
        table.add_column("id", no_wrap=True)
        for col in ("name", "dataset", "model", "status", "epochs", "best loss", "eval", "created", "time"):
            table.add_column(col, overflow="fold")
        colors = {"completed": "green", "failed": "red", "interrupted": "yellow", "died": "red", "damaged": "red", "running": "cyan"}
        for r in rows:
            st = r["status"]
            if st == "damaged":
                table.add_row(r["id"], "—", "—", "—", "[red]damaged[/]", "—", "—", "—", "—", r.get("problem", "")[:60])
                continue
            ev = f"{r['metric']} {_fmt(r['metric_value'])}" if r.get("metric") else "—"
            table.add_row(
                r["id"], _fmt(r["name"]), _fmt(r["dataset"]), _fmt(r["model"]), f"[{colors.get(st, 'white')}]{st}[/]",
                f"{_fmt(r['epochs_done'])}/{_fmt(r['epochs'])}", _fmt(r["best_value"]), ev,
                (r["created"] or "—")[:19].replace("T", " "), f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "—",
            )
        _console().print(table)


@app.command()
def show(run: RunRef = "latest", runs_dir: RunsDir = None, json_out: JsonOut = False, debug: Debug = False) -> None:
    """Show a run's config, facts and metrics."""
    with handled(debug):
        from lstmctl.commands import resolve
        from lstmctl.manage import show as do_show

        data = do_show(resolve(run, runs_dir))
        if json_out:
            print(json.dumps({k: v for k, v in data.items() if k != "config_yaml"}, default=str))
            return
        from rich.syntax import Syntax
        from rich.table import Table

        con = _console()
        con.print(f"[bold]{data['id']}[/]  ({data['status']})  {data['path']}")
        con.print(Syntax(data["config_yaml"] or "# no config.yaml", "yaml", theme="ansi_dark", background_color="default"))
        facts = Table(show_header=False, title="run")
        info = data["info"]
        for k in ("status", "dataset", "model", "task", "params", "device", "world_size", "seed", "epochs_done", "epochs",
                  "stop_reason", "best", "created", "started", "ended", "torch_version", "lstmctl_version", "host", "pid", "error"):
            if k in info:
                facts.add_row(k, data["status"] if k == "status" else _fmt(json.dumps(info[k]) if isinstance(info[k], dict) else info[k]))
        con.print(facts)
        ms = Table(title="metrics")
        for c in ("loss", "first", "last", "min"):
            ms.add_column(c)
        for k in ("train_loss", "val_loss"):
            if k in data["metrics_summary"]:
                s = data["metrics_summary"][k]
                ms.add_row(k, _fmt(s["first"]), _fmt(s["last"]), _fmt(s["min"]))
        con.print(ms)
        if data["eval"]:
            ev = data["eval"]
            flat = {k: v for k, v in ev["metrics"].items() if isinstance(v, (int, float))}
            con.print(f"eval ({ev['split']}, {ev['checkpoint']}): " + ", ".join(f"{k} {_fmt(v)}" for k, v in flat.items()))


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes, or 'latest').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the figure.")] = Path("compare.png"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf (when --out has no such suffix).")] = "png",
    runs_dir: RunsDir = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Compare runs: loss curves and config differences.

    Overlays the loss curves in one figure and lists only the config keys that differ, beside the metrics.
    """
    with handled(debug):
        from lstmctl.commands import resolve
        from lstmctl.manage import compare as do_compare

        result = do_compare([resolve(r, runs_dir) for r in runs], out, fmt)
        if json_out:
            print(json.dumps(result, default=str))
            return
        from rich.table import Table

        table = Table(title="config keys that differ")
        table.add_column("key")
        for r in result["runs"]:
            table.add_column(r["id"], overflow="fold")
        for key, values in result["differences"].items():
            table.add_row(key, *[_fmt(v) for v in values])
        table.add_section()
        table.add_row("epochs done", *[_fmt(r["epochs_done"]) for r in result["runs"]])
        table.add_row("best loss", *[f"{_fmt(r['best_value'])} ({r['best_monitor']})" for r in result["runs"]])
        table.add_row("eval", *[f"{r['metric']} {_fmt(r['metric_value'])}" if r["metric"] else "—" for r in result["runs"]])
        _console().print(table)
        print(result["figure"])


@app.command()
def predict(
    run: RunRef,
    input: Annotated[Path, typer.Option("--input", "-i", help="A CSV with the training columns (tabular runs) or a .npy array (N, steps, features).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="CSV file to write (default: stdout).")] = None,
    runs_dir: RunsDir = None,
    debug: Debug = False,
) -> None:
    """Predict on new data with a trained run.

    Runs the best checkpoint on a CSV (tabular runs) or a .npy array and writes the predictions as CSV.
    """
    with handled(debug):
        from lstmctl.commands import predict_file, resolve

        text, n = predict_file(resolve(run, runs_dir), input, output)
        if output is None:
            sys.stdout.write(text)
        else:
            print(f"wrote {n} predictions to {output}", file=sys.stderr)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="KEY=V1,V2,... one axis of the grid. Repeatable.")],
    set_: Sets = None,
    runs_dir: RunsDir = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for sweep-<id>.csv.")] = Path("."),
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Train one run per combination of --grid values.

    Then prints a table sorted by the best validation loss and writes it as sweep-<id>.csv.
    """
    with handled(debug):
        from lstmctl.manage import sweep as do_sweep

        result = do_sweep(config, grid, set_, runs_dir, out_dir)
        if json_out:
            print(json.dumps(result, default=str))
            return
        from rich.table import Table

        rows = result["results"]
        table = Table(title=f"sweep {result['sweep']}: {len(rows)} runs, best first")
        for col in rows[0]:
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(*[_fmt(v) for v in r.values()])
        _console().print(table)
        print(result["csv"])


config_app = typer.Typer(help="Show, validate or describe configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config: Annotated[Path, typer.Argument(help="YAML config file.")], set_: Sets = None, debug: Debug = False
) -> None:
    """Print the resolved config with every default filled in."""
    with handled(debug):
        from lstmctl import config as config_mod

        sys.stdout.write(config_mod.dump(config_mod.load(config, set_)))


@config_app.command("validate")
def config_validate(
    config: Annotated[Path, typer.Argument(help="YAML config file.")], set_: Sets = None, debug: Debug = False
) -> None:
    """Check a config without training: exit 0 if valid, 2 with the problem otherwise."""
    with handled(debug):
        from lstmctl import config as config_mod

        cfg = config_mod.load(config, set_)
        print(f"ok: {config} is valid (dataset {cfg.data['name']}, model {cfg.model['name']}, {cfg.train.epochs} epochs)")


@config_app.command("schema")
def config_schema(debug: Debug = False) -> None:
    """Print a JSON Schema of the whole config, with every dataset's and model's parameters."""
    with handled(debug):
        from lstmctl import config as config_mod

        print(json.dumps(config_mod.json_schema(), indent=2))


@app.command()
def resume(
    run: Annotated[str, typer.Argument(help="Run id, a unique prefix of one, or 'latest'.")],
    epochs: Annotated[
        Optional[int],
        typer.Option("--epochs", "-e", min=1, help="Epochs in all (default: the run's target, i.e. its train.epochs).", show_default=False),
    ] = None,
    from_: Annotated[str, typer.Option("--from", help="last: continue this run; best: weights for a --new-run.")] = "last",
    new_run: Annotated[bool, typer.Option("--new-run", help="Start a new run from the checkpoint's weights (fresh optimizer).")] = False,
    set_: Sets = None,
    runs_dir: RunsDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Continue a run from its last checkpoint until it has --epochs in all, or (--from best --new-run) start a new run from its best weights."""
    with handled(debug):
        from lstmctl.resume import resume as do_resume

        r = do_resume(run, runs_dir, epochs=epochs, source=from_, new_run=new_run, overrides=set_, quiet=quiet or json_out)
        if json_out:
            print(json.dumps({"run": r.run.id, "run_dir": str(r.run.path), "message": r.message, **(r.summary or {})}, default=str))
            return
        if r.summary is None:
            print(r.message, file=sys.stderr)
        else:
            best = r.summary["best"]
            best_txt = f"best {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}" if best["value"] is not None else "no finite loss"
            print(f"finished {r.run.id}: {r.summary['epochs_done']} epochs ({r.summary['stop_reason']}), {best_txt}", file=sys.stderr)
        print(f"run id:  {r.run.id}")
        print(f"run dir: {r.run.path}")


def main() -> None:
    app(prog_name="lstmctl")


if __name__ == "__main__":
    main()
