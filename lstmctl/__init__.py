"""lstmctl: a command-line experiment runner for recurrent neural networks."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_run"]


def load_run(run: str, runs_dir: str | None = None):
    """Open a finished run directory as a Python object (see lstmctl.api.Run)."""
    from lstmctl.api import load_run as _load_run  # lazy: keeps `import lstmctl` free of torch

    return _load_run(run, runs_dir)
