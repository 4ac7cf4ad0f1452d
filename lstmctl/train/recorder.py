"""What a training process writes into its run directory besides checkpoints: config.yaml,
data_state.json and run.json at the start (record_new_run), one metrics.csv row per epoch, and
run.json's status as it goes (running -> completed | failed | interrupted).

metrics.csv's columns are evaluation.metric_columns(data): epoch, train_loss, val_loss, val_<metric>...,
lr, seconds; a cell the epoch did not fill (no validation that epoch) is empty.

Under DDP only rank 0 records: the Recorder of every other rank is disabled and writes nothing.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import socket
import sys
from typing import Any

import torch

from lstmctl import __version__
from lstmctl import config as config_mod
from lstmctl.errors import LstmctlError, RunFailed
from lstmctl.models.base import count_parameters
from lstmctl.runs import RunDir, utcnow, write_json, write_text_atomic
from lstmctl.session import Session, save_data_state

METRIC_FIELDS = ["epoch", "train_loss", "val_loss", "lr", "seconds"]  # the columns before val_<metric> existed


def record_new_run(run: RunDir, session: Session, *, source, overrides, world_size: int = 1, **extra) -> None:
    """Write what a run starts with: the resolved config, the fitted data state and run.json."""
    cfg = session.cfg
    write_text_atomic(run.config_path, config_mod.dump(cfg))
    save_data_state(session.data, run.data_state)
    write_json(
        run.run_json,
        {
            "id": run.id,
            "name": cfg.name,
            "status": "running",
            "created": utcnow(),
            "dataset": cfg.data["name"],
            "model": cfg.model["name"],
            "task": session.data.task.value,
            "device": str(session.device),
            "world_size": world_size,
            "seed": cfg.seed,
            "params": count_parameters(session.model),
            "epochs": cfg.train.epochs,
            "epochs_done": 0,
            "source": source,
            "overrides": list(overrides or []),
            **extra,
            "torch_version": torch.__version__,
            "lstmctl_version": __version__,
            "python": platform.python_version(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "argv": sys.argv,
        },
    )


def _csv_row(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    return {k: ("" if row.get(k) is None else row.get(k)) for k in columns}


class Recorder:
    """metrics.csv and run.json's status fields for one training process."""

    def __init__(self, run: RunDir, columns: list[str] | None = None, *, enabled: bool = True):
        self.run = run
        self.columns = list(columns or METRIC_FIELDS)
        self.enabled = enabled  # False on DDP ranks other than 0
        self._file = None
        self._writer = None

    # ------------------------------------------------------------------ metrics.csv
    def open_metrics(self, epoch: int) -> None:
        """Keep the complete rows up to `epoch` (the checkpoint's), then append from there.

        The file is rewritten with this run's columns: rows of an older version get empty val_<metric> cells."""
        if not self.enabled:
            return
        rows = self.run.read_metrics() if epoch > 0 else []
        # a killed process may have left rows past the checkpoint, or a cut last line
        rows = [r for r in rows if isinstance(r.get("epoch"), int) and r["epoch"] <= epoch and r.get("seconds") is not None]
        rows = [r for i, r in enumerate(rows) if r["epoch"] == i + 1]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=self.columns)
        w.writeheader()
        for r in rows:
            w.writerow(_csv_row(r, self.columns))
        write_text_atomic(self.run.metrics_csv, buf.getvalue())  # a kill here keeps the old file whole
        self._file = open(self.run.metrics_csv, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)

    def epoch_row(self, row: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.writerow(_csv_row(row, self.columns))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    # ------------------------------------------------------------------ run.json
    def running(self, **fields: Any) -> None:
        if self.enabled:
            self.run.update(status="running", pid=os.getpid(), host=socket.gethostname(), started=utcnow(), **fields)

    def saved(self, epoch: int, best: dict[str, Any]) -> None:
        if self.enabled:
            self.run.update(epochs_done=epoch, best=best)

    def completed(self, summary: dict[str, Any]) -> None:
        if self.enabled:
            self.run.update(status="completed", ended=utcnow(), **summary)

    def interrupted(self, epoch: int) -> None:
        if self.enabled:
            self.run.update(status="interrupted", ended=utcnow(), epochs_done=epoch)

    def quitting(self) -> None:
        """A second Ctrl-C: the process leaves at once; epochs_done stays that of the last save."""
        if self.enabled:
            self.run.update(status="interrupted", ended=utcnow())

    def failed(self, message: str, epoch: int, saved: tuple[int, int] | None) -> RunFailed:
        """Mark the run failed; the error to raise says which checkpoint is kept (`saved`: this process's last save)."""
        if self.enabled:
            try:
                self.run.update(status="failed", ended=utcnow(), error=message, epochs_done=epoch)
            except (OSError, LstmctlError):  # the disk that failed may refuse run.json too
                pass
        if saved is not None:
            kept = f"its last good checkpoint (epoch {saved[0]}) is kept in {self.run.checkpoints}"
        elif self.run.checkpoint("last").exists():
            kept = f"its last good checkpoint is kept in {self.run.checkpoints}"
        else:
            kept = "no checkpoint had been saved yet"
        return RunFailed(f"run {self.run.id} failed: {message}; {kept}")
