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
) -> None:
    """Train a model from a config; prints the run id and run directory at the end."""
    with handled(debug):
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
    """Metrics of a run's checkpoint on a split; writes eval.json in the run directory."""
    with handled(debug):
        from lstmctl.commands import evaluate, resolve

        if split not in ("test", "val", "train"):
            raise UserError(f"--split must be test, val or train, got {split!r}")
        rd = resolve(run, runs_dir)
        result = evaluate(rd, checkpoint, split)
        if json_out:
            print(json.dumps(result))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{rd.id} — {split} split, {checkpoint} checkpoint (epoch {result['epoch']})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in result["metrics"].items():
            if isinstance(v, (int, float)) or v is None:
                table.add_row(k, "—" if v is None else f"{v:.6g}")
        Console().print(table)
        print(f"wrote {rd.eval_json}", file=sys.stderr)


@app.command()
def plot(
    run: RunRef = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf.")] = "png",
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="best or last.")] = "best",
    runs_dir: RunsDir = None,
    debug: Debug = False,
) -> None:
    """Write a run's figures (loss curves, predictions) into its plots/ folder and print their paths."""
    with handled(debug):
        from lstmctl.commands import plot as do_plot
        from lstmctl.commands import resolve

        for p in do_plot(resolve(run, runs_dir), fmt, checkpoint):
            print(p)


def main() -> None:
    app(prog_name="lstmctl")


if __name__ == "__main__":
    main()
