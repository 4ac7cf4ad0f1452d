"""Progress for people on stderr: a rich bar on a terminal, plain periodic lines otherwise (never wrapped:
a log file gets one line per message, whatever its length).

Each shows the losses and, when it is another column, the monitored one: `loss 0.31 val 0.35 val_accuracy 0.887`.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressReporter:
    def __init__(self, total_epochs: int, start_epoch: int, log_every_s: float, enabled: bool = True,
                 monitor: str = "val_loss"):
        terminal = sys.stderr.isatty()
        self.console = Console(stderr=True, soft_wrap=not terminal)  # a file or a pipe: each message one line, never wrapped
        self.monitor = monitor
        self.total = total_epochs
        self.enabled = enabled
        self.log_every_s = log_every_s
        self.tty = enabled and terminal
        self._last_log = 0.0
        self._start = time.perf_counter()
        self._start_epoch = start_epoch
        self._bar = None
        if self.tty:
            self._bar = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
                refresh_per_second=5,  # rich redraws on its own thread: update() stays cheap
            )
            self._task = self._bar.add_task("train", total=total_epochs, completed=start_epoch, info="")
            self._bar.start()

    def epoch(self, epoch: int, row: dict) -> None:
        if not self.enabled:
            return
        info = self.info(row)
        if self._bar is not None:
            self._bar.update(self._task, completed=epoch, info=info)
            return
        now = time.perf_counter()
        if now - self._last_log >= self.log_every_s or epoch == self.total:
            self._last_log = now
            done = epoch - self._start_epoch
            eta = (now - self._start) / done * (self.total - epoch) if done else 0.0
            print(f"epoch {epoch}/{self.total}  {info}  eta {eta:.0f}s", file=sys.stderr, flush=True)

    def info(self, row: dict) -> str:
        """`loss 0.31 val 0.35 val_accuracy 0.887`: the losses, then the monitor unless it is one of them."""
        info = f"loss {row['train_loss']:.4g}" + (f" val {row['val_loss']:.4g}" if row.get("val_loss") is not None else "")
        if self.monitor not in ("train_loss", "val_loss") and row.get(self.monitor) is not None:
            info += f" {self.monitor} {row[self.monitor]:.4g}"
        return info

    def message(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
