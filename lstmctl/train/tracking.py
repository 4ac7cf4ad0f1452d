"""Optional experiment tracking. metrics.csv stays the source of truth; these are mirrors of it."""

from __future__ import annotations

from pathlib import Path

from lstmctl.errors import ConfigError


def require_tensorboard():
    """The SummaryWriter class, or a ConfigError saying how to install what it needs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch's module imports the `tensorboard` package
        raise ConfigError(
            "logging.tensorboard: true needs the tensorboard package: pip install 'lstmctl[tensorboard]' "
            "(or set logging.tensorboard: false)"
        ) from e
    return SummaryWriter


class TensorBoardLogger:
    """Scalars per epoch (train/val loss, val_<metric> as val/<metric>, learning rate, epoch seconds)
    into <run>/tensorboard/.

    Disabled (logging.tensorboard: false, or a DDP rank other than 0), it does nothing and needs nothing.
    """

    def __init__(self, run_path: Path, enabled: bool = True):
        self.writer = require_tensorboard()(log_dir=str(run_path / "tensorboard")) if enabled else None

    def log(self, row: dict) -> None:
        if self.writer is None:
            return
        epoch = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and value is not None:
                tag = key.replace("_", "/", 1) if key.endswith("loss") or key.startswith("val_") else key
                self.writer.add_scalar(tag, value, epoch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
