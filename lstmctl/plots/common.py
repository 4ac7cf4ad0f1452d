"""What every figure shares: the headless backend, the file formats, saving, the title line."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are files, no display is needed (or present on a server)
import matplotlib.pyplot as plt  # noqa: E402

from lstmctl.errors import UserError  # noqa: E402
from lstmctl.session import OpenedRun  # noqa: E402

FORMATS = ("png", "svg", "pdf")

__all__ = ["FORMATS", "check_format", "plt", "save", "title"]


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def save(fig, path: Path) -> Path:
    """Lay out, write at the one resolution every figure uses, and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def title(opened: OpenedRun, what: str) -> str:
    """The title line of a per-task figure: which run and which weights drew it."""
    return f"{opened.run.id}: {what} ({opened.checkpoint} checkpoint, epoch {opened.epoch})"
