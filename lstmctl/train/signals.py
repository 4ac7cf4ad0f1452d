"""Ctrl-C and SIGTERM while training.

The first signal only sets `signum`: the loop finishes its step, saves (mid-epoch if need be) and
raises Interrupted, so a resumed run continues exactly. A second one quits at once with 130/143;
atomic writes keep every file whole and resume goes on from the last save.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from lstmctl.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def write_stderr(text: str) -> None:
    """os.write, not print: a buffered print in a handler could collide with one the loop is doing."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


class StopSignal:
    """Installed for the length of fit(): `with StopSignal(...) as stop: ... if stop.signum: ...`.

    main: this process speaks for the run (DDP rank 0, or no DDP): it prints and calls `on_quit`.
    ddp: under torchrun, which forwards the terminal's Ctrl-C to every worker.
    on_quit: called before leaving on a second signal (marks run.json interrupted).
    """

    def __init__(self, *, main: bool = True, ddp: bool = False, on_quit: Callable[[], None] | None = None):
        self.main, self.ddp, self.on_quit = main, ddp, on_quit
        self.signum: int | None = None
        self._at = 0.0
        self._old: dict = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def interrupted(self, run_id: str, epoch: int, step: int, steps_per_epoch: int) -> Interrupted:
        """The error fit() raises once the state is saved: where it stopped and how to go on."""
        where = f"after epoch {epoch}" if step == 0 else f"in epoch {epoch + 1} after step {step} of {steps_per_epoch}"
        return Interrupted(
            f"{self.name}: run {run_id} interrupted {where}; state saved. Continue with: lstmctl resume {run_id}", self.signum
        )

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():  # Python only lets the main thread handle signals
            self._old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: leave now; atomic writes keep files whole
            if self.ddp and time.monotonic() - self._at < 2.0:
                return  # torchrun forwards the terminal's Ctrl-C: the same press, not a second one
            code = 130 if signum == signal.SIGINT else 143
            if self.main:
                try:  # files stay whole (atomic writes); say what happened, resume works from last.pt
                    write_stderr(f"\n{signal.Signals(signum).name} again: quitting now without saving this step\n")
                    if self.on_quit is not None:
                        self.on_quit()
                except BaseException:
                    pass
            os._exit(code)
        self.signum = signum
        self._at = time.monotonic()
        if self.main:
            write_stderr(f"\n{signal.Signals(signum).name}: stopping after this step and saving (press Ctrl-C again to quit at once)\n")


@contextmanager
def forwarded_to(children: Callable[[], Iterable[subprocess.Popen]],
                 announce: Callable[[int, list[int]], None] | None = None) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM go on to every child process (`tune --workers`, `train --seeds
    --parallel`: each child stops and saves as it would on its own); yields the list of signals
    received, so the caller stops starting new children; `announce(signum, received)` may say so. The
    previous handlers come back on exit. Outside the main thread (where handlers cannot be set) nothing
    is installed."""
    stop: list[int] = []

    def forward(signum, frame) -> None:  # runs in the main thread between bytecodes
        stop.append(signum)
        if announce is not None:
            announce(signum, stop)
        for proc in list(children()):
            try:
                proc.send_signal(signum)
            except (ProcessLookupError, OSError):
                pass

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, forward) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
