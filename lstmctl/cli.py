"""The command line: declares the commands and their options, calls lstmctl.commands, maps errors to exit codes.

THE LAZY-IMPORT RULE (the one place it is written): `lstmctl --help` must stay instant, so this module
imports only typer and lstmctl.errors at the top. Each command imports its lstmctl.commands module inside
the function (those pull in torch, matplotlib and rich); everywhere else in lstmctl, lstmctl imports sit at the
top. Outside this file only optional extras (TensorBoard, torch's launcher), platform modules (fcntl) and
heavy libraries that a single function needs (scipy.stats for group statistics, ~2 s) are imported where used.
Optuna, the optional extra behind `tune` and `sweep`, is imported only by lstmctl/search/storage.py's
require_optuna() when a search runs, never for `--help`.
Typer's docs split a CLI into one module per command group with its own Typer app; here the apps stay in
this file and the work moves to lstmctl.commands, so declaring the options never imports a command module.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from lstmctl.cli_options import Checkpoint, ConfigFile, Debug, JsonOut, Quiet, ReadRef, RunRef, RunsDir, Sets, Wide
from lstmctl.errors import EXIT_SIGINT, Interrupted, LstmctlError

app = typer.Typer(
    name="lstmctl",
    help="Train, evaluate and plot recurrent networks from YAML configs. Every run is kept in runs/<run_id>/.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print local variables (configs, tensors) in tracebacks
    add_completion=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show, validate or describe configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_state = {"debug": os.environ.get("LSTMCTL_DEBUG", "") not in ("", "0")}

def _err(text: str) -> None:
    from rich.console import Console  # lazy: see the rule at the top
    from rich.markup import escape

    con = Console(stderr=True, highlight=False, emoji=False)
    con.soft_wrap = not con.is_terminal  # a file or a pipe: the one line, whatever its length; a terminal: wrapped between words
    con.print(f"[bold red]error:[/] {escape(text)}")


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
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
    nproc: Annotated[
        Optional[int],
        typer.Option("--nproc", help="Train with DDP on N processes of this machine (launches torchrun).", show_default=False),
    ] = None,
    seeds: Annotated[
        Optional[str],
        typer.Option("--seeds", help="Train one run per seed as one group: N for seeds 0..N-1, or a list such as 0,1,2.", show_default=False),
    ] = None,
    parallel: Annotated[
        Optional[int],
        typer.Option("--parallel", help="With --seeds: train K runs at a time, as separate processes sharing the CPU cores.", show_default=False),
    ] = None,
    group_id: Annotated[Optional[str], typer.Option("--group-id", hidden=True)] = None,  # set by --parallel for its members
) -> None:
    """Train a model from a config file (--seeds: one run per seed, as a group).

    Prints progress on stderr and, at the end, the run id and run directory (with --seeds: the group id and its runs).
    """
    with handled(debug):
        from lstmctl.commands import seeds as group_command
        from lstmctl.commands import train as command

        seed_list = group_command.check_options(seeds, parallel, nproc, set_)
        if seed_list is not None:
            return group_command.train_seeds(config, set_, runs_dir, seed_list, parallel=parallel, quiet=quiet, json_out=json_out)
        if nproc is not None:
            raise typer.Exit(command.launch(nproc, config, set_, runs_dir, quiet=quiet, json_out=json_out, debug=debug))
        command.train(config, set_, runs_dir, quiet=quiet, json_out=json_out, group=group_id)


@app.command("eval")
def eval_(
    run: ReadRef = "latest",
    checkpoint: Checkpoint = "best",
    split: Annotated[str, typer.Option("--split", help="test, val or train.")] = "test",
    runs_dir: RunsDir = None,
    json_out: JsonOut = False,
    wide: Wide = False,
    debug: Debug = False,
) -> None:
    """Score a run's checkpoint on a split (a group: each of its runs, with each metric's mean, std and 95% interval).

    Loads best.pt (or --checkpoint last), prints the metrics and writes eval.json in the run directory.
    """
    with handled(debug):
        from lstmctl.commands import evaluate as command, output

        with output.wide_tables(wide):
            command.evaluate(run, checkpoint, split, runs_dir, json_out=json_out)


@app.command()
def plot(
    run: ReadRef = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf.")] = "png",
    checkpoint: Checkpoint = "best",
    runs_dir: RunsDir = None,
    debug: Debug = False,
) -> None:
    """Write a run's figures into its plots/ folder (a group: each of its runs').

    Loss curves for every run, and the prediction figures its task calls for; prints their paths.
    """
    with handled(debug):
        from lstmctl.commands import plot as command

        command.plot(run, fmt, checkpoint, runs_dir)


@app.command("runs")
def runs_(
    runs_dir: RunsDir = None,
    status: Annotated[Optional[str], typer.Option("--status", help="Only runs with this status (running, completed, pruned, failed, interrupted, died, damaged).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Only runs whose name contains this (or matches this glob).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Show at most this many rows.")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Show every run of a group on its own row (default: one row per group).")] = False,
    study: Annotated[Optional[str], typer.Option("--study", help="Only the runs of this study's trials (lstmctl tune, sweep).")] = None,
    json_out: JsonOut = False,
    wide: Wide = False,
    debug: Debug = False,
) -> None:
    """List the runs, newest first; the runs of a group (train --seeds) on one row with mean ± std."""
    with handled(debug):
        from lstmctl.commands import runs as command, output

        with output.wide_tables(wide):
            command.list_(runs_dir, status, name, limit, json_out=json_out, expand=all_, study=study)


@app.command()
def show(run: ReadRef = "latest", runs_dir: RunsDir = None, json_out: JsonOut = False, wide: Wide = False, debug: Debug = False) -> None:
    """Show a run's config, facts and metrics (a group: its runs and each metric's mean, std and 95% interval)."""
    with handled(debug):
        from lstmctl.commands import runs as command, output

        with output.wide_tables(wide):
            command.show(run, runs_dir, json_out=json_out)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes, or 'latest'), or two group ids.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the figure.")] = Path("compare.png"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf (when --out has no such suffix).")] = "png",
    runs_dir: RunsDir = None,
    json_out: JsonOut = False,
    wide: Wide = False,
    debug: Debug = False,
) -> None:
    """Compare runs: loss curves and config differences; or two groups: is the difference beyond seed noise?

    Overlays the loss curves in one figure and lists only the config keys that differ, beside the metrics.
    Two groups: the difference of the test headline metric with its 95% interval and Welch's t-test, and
    a figure of mean curves with a ±std band.
    """
    with handled(debug):
        from lstmctl.commands import compare as command, output

        with output.wide_tables(wide):
            command.compare(runs, out, fmt, runs_dir, json_out=json_out)


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
        from lstmctl.commands import predict as command

        command.predict(run, input, output, runs_dir)


@app.command("inspect")
def inspect_(
    run: RunRef = "latest",
    sample: Annotated[int, typer.Option("--sample", help="Which sequence of the split to draw (0 = the first).")] = 0,
    split: Annotated[str, typer.Option("--split", help="test, val or train.")] = "test",
    checkpoint: Checkpoint = "best",
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf.")] = "png",
    runs_dir: RunsDir = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Look inside a run's network: gates, cell state and gradient flow over time.

    Writes into plots/ heatmaps of every gate and state for one sequence, the mean gates and their
    saturation, the units that follow the target and the gradient norm against time; prints their
    paths and the numbers.
    """
    with handled(debug):
        from lstmctl.commands import inspect as command

        command.inspect(run, sample, split, checkpoint, fmt, runs_dir, json_out=json_out)


@app.command()
def sweep(
    config: ConfigFile,
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="KEY=V1,V2,... one axis of the grid. Repeatable.")],
    set_: Sets = None,
    runs_dir: RunsDir = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for sweep-<id>.csv.")] = Path("."),
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Train one run per combination of --grid values.

    Then prints a table sorted by the best monitored value (train.monitor, in its mode) and writes it as sweep-<id>.csv.
    """
    with handled(debug):
        from lstmctl.commands import sweep as command

        command.sweep(config, grid, set_, runs_dir, out_dir, json_out=json_out)


class _TuneGroup(typer.core.TyperGroup):
    def parse_args(self, ctx, args):  # `lstmctl tune CONFIG ...` is `lstmctl tune run CONFIG ...`
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


tune_app = typer.Typer(cls=_TuneGroup, no_args_is_help=True, help="Search hyperparameters on Optuna: lstmctl tune CONFIG; tune show STUDY.")
app.add_typer(tune_app, name="tune")
Storage = Annotated[Optional[str], typer.Option("--storage", show_default=False, help="Database URL of the study, e.g. "
                    "postgresql+psycopg://user:pw@host/db (default: a journal file in the runs directory).")]


@tune_app.command("run")
def tune_run(
    config: Annotated[Path, typer.Argument(help="YAML config with a search: section (or give --param).")],
    trials: Annotated[Optional[int], typer.Option("--trials", help="Trials in the study in all (default 20; grid: every point); run again, it continues to N.")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Start no trial after this many seconds.")] = None,
    study: Annotated[Optional[str], typer.Option("--study", help="Study name (default: the config's name); an existing study is continued.")] = None,
    storage: Storage = None,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, random or grid (seeded).")] = "tpe",
    pruner: Annotated[str, typer.Option("--pruner", help="median, hyperband or none, on the monitored metric.")] = "median",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="KEY=SPACE, e.g. 'train.lr={low: 1e-4, high: 0.1, log: true}', added to search:.")] = None,
    set_: Sets = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes on this machine, sharing its cores.", min=1)] = 1,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the sampler (default: the config's seed); worker k adds k.")] = None,
    heartbeat: Annotated[int, typer.Option("--heartbeat", help="Seconds between a running trial's heartbeats.", min=1)] = 10,
    grace: Annotated[int, typer.Option("--grace", help="Seconds without a heartbeat before a trial is dead (failed, queued again).", min=1)] = 30,
    retries: Annotated[int, typer.Option("--retries", help="Times a dead or interrupted trial is queued again.", min=0)] = 2,
    nproc: Annotated[Optional[int], typer.Option("--nproc", help="Refused: a trial trains in one process.")] = None,
    runs_dir: RunsDir = None, quiet: Quiet = False, json_out: JsonOut = False, debug: Debug = False,
) -> None:
    """Search the config's search: space on Optuna; each trial is an ordinary run tagged with the study. Ends with the trials and the best."""
    with handled(debug):
        from lstmctl.commands import tune as command

        command.tune(config, trials=trials, timeout=timeout, study=study, storage=storage, sampler=sampler, pruner=pruner,
                     params=param, sets=set_, workers=workers, seed=seed, heartbeat=heartbeat, grace=grace, retries=retries,
                     nproc=nproc, runs_dir=runs_dir, quiet=quiet, json_out=json_out)


@tune_app.command("show")
def tune_show(study: Annotated[str, typer.Argument(help="Study name.")], storage: Storage = None,
              fmt: Annotated[str, typer.Option("--format", "-f", help="png, svg or pdf.")] = "png",
              runs_dir: RunsDir = None, json_out: JsonOut = False, debug: Debug = False) -> None:
    """A study: its trials (state, value, parameters, epochs, run), the best, best.yaml and figures in its folder."""
    with handled(debug):
        from lstmctl.commands import study as command

        command.show(study, storage, runs_dir, json_out=json_out, fmt=fmt)


@config_app.command("show")
def config_show(config: ConfigFile, set_: Sets = None, debug: Debug = False) -> None:
    """Print the resolved config with every default filled in."""
    with handled(debug):
        from lstmctl.commands import config as command

        command.show(config, set_)


@config_app.command("validate")
def config_validate(config: ConfigFile, set_: Sets = None, debug: Debug = False) -> None:
    """Check a config without training: exit 0 if valid, 2 with the problem otherwise."""
    with handled(debug):
        from lstmctl.commands import config as command

        command.validate(config, set_)


@config_app.command("schema")
def config_schema(debug: Debug = False) -> None:
    """Print a JSON Schema of the whole config, with every dataset's and model's parameters."""
    with handled(debug):
        from lstmctl.commands import config as command

        command.schema()


@app.command()
def backtest(
    config: ConfigFile,
    folds: Annotated[int, typer.Option("--folds", min=1, help="Forecast origins (folds), one run each.")],
    step: Annotated[
        Optional[int],
        typer.Option("--step", min=1, show_default=False, help="Test rows per fold (default: the test block / K, at least the horizon)."),
    ] = None,
    refit: Annotated[bool, typer.Option("--refit/--no-refit", help="Train a model per fold, or once on fold 1 for every origin.")] = True,
    set_: Sets = None,
    runs_dir: RunsDir = None,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Rolling-origin backtest of a series config: K folds on an expanding window, as a group of runs, beside the baselines."""
    with handled(debug):
        from lstmctl.commands import backtest as command

        command.backtest(config, folds, step, refit, set_, runs_dir, quiet=quiet, json_out=json_out)


@app.command()
def resume(
    run: Annotated[str, typer.Argument(help="Run id, a unique prefix of one, or 'latest'; or a group id (its unfinished runs).")],
    epochs: Annotated[
        Optional[int],
        typer.Option("--epochs", "-e", min=1, help="Epochs in all (default: the run's target, i.e. its train.epochs).", show_default=False),
    ] = None,
    from_: Annotated[str, typer.Option("--from", help="last: continue this run; best: weights for a --new-run.")] = "last",
    new_run: Annotated[bool, typer.Option("--new-run", help="Start a new run from the checkpoint's weights (fresh optimizer).")] = False,
    set_: Sets = None,
    runs_dir: RunsDir = None,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Continue a run from its last checkpoint until it has --epochs in all, or (--from best --new-run) start a new run from its best weights.

    A group id continues each of its unfinished runs (completed ones are skipped) and starts the seeds that never started.
    """
    with handled(debug):
        from lstmctl.commands import resume as command

        command.resume(run, runs_dir, epochs=epochs, source=from_, new_run=new_run, overrides=set_, quiet=quiet, json_out=json_out)


def main() -> None:
    app(prog_name="lstmctl")


if __name__ == "__main__":
    main()
