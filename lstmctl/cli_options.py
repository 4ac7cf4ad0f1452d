"""The options and arguments several commands share, as typed aliases for cli.py's declarations.

Typer only: importing this costs nothing on `lstmctl --help` (see the lazy-import rule in cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

RunsDir = Annotated[
    Optional[Path],
    typer.Option("--runs-dir", envvar="LSTMCTL_RUNS_DIR", help="Directory holding the runs (default ./runs)."),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Wide = Annotated[bool, typer.Option("--wide", help="Print every column of the tables, whatever the terminal's width.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
Sets = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config key, e.g. --set train.lr=0.003 (value parsed as YAML). Repeatable."),
]
RunRef = Annotated[str, typer.Argument(help="Run id, a unique prefix of one, or 'latest'.")]
ReadRef = Annotated[str, typer.Argument(help="Run or group id, a unique prefix of one, or 'latest' (the newest run).")]
Checkpoint = Annotated[str, typer.Option("--checkpoint", "-c", help="best or last.")]
ConfigFile = Annotated[Path, typer.Argument(help="YAML config file.")]
