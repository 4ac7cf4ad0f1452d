"""Everything a resumed run needs, in one place: what last.pt and best.pt hold and how it comes back.

last.pt = where training stands (completed epochs; inside the next one: steps done, their losses and
seconds, the carried state of a stateful run) + model, optimizer, scheduler and GradScaler state +
best value/epoch/monitor/mode + early-stopping counters (best, bad epochs, monitor, mode) + every global
RNG + the resolved config. A last.pt written before monitors had modes (no "mode") watched a loss: min.
Restored in full, a run continues bit-for-bit on CPU (the data order never depends on the past:
train/setup.epoch_order). The keys are a file format: old last.pt files must keep resuming.
File IO (atomic writes, safe loads, RNG capture) is lstmctl/checkpoint.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from lstmctl import __version__
from lstmctl import checkpoint as ckpt
from lstmctl.config import Config
from lstmctl.runs import RunDir
from lstmctl.train.hooks import BestModel, EarlyStopper


@dataclass
class TrainState:
    """The objects that train (shared with the Trainer) and the counters that say where training stands."""

    cfg: Config
    model: torch.nn.Module  # the unwrapped model (never the DDP or compiled wrapper): portable weights
    opt: torch.optim.Optimizer
    sched: Any  # an lr_scheduler or None
    scaler: Any  # a GradScaler (fp16) or None
    best: BestModel
    stopper: EarlyStopper
    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # steps done in epoch+1 (a save mid-epoch, on a signal)
    losses: list[float] = field(default_factory=list)  # those steps' losses and batch sizes,
    sizes: list[int] = field(default_factory=list)  # for the epoch's train_loss
    seconds: float = 0.0  # time spent in them
    carry: Any = None  # stateful runs: the state the next step starts from

    def add_losses(self, values: list[float], sizes: list[int]) -> None:
        self.losses += values
        self.sizes += sizes

    def epoch_loss(self) -> float:
        """The epoch's mean step loss weighted by batch size, summed exactly (math.fsum, in Python)."""
        return math.fsum(v * w for v, w in zip(self.losses, self.sizes)) / sum(self.sizes)

    def next_epoch(self) -> None:
        self.step_in_epoch = 0
        self.losses, self.sizes, self.seconds = [], [], 0.0
        self.carry = None  # stateful: every epoch reads the series from its start, so from a zero state

    # ------------------------------------------------------------------ the files
    def last_checkpoint(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "partial": {
                "losses": torch.tensor(self.losses, dtype=torch.float64),
                "sizes": torch.tensor(self.sizes, dtype=torch.int64),
                "seconds": float(self.seconds),
            },
            "carry": _to_cpu(self.carry),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best": self.best.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "rng": ckpt.rng_state(),
            "config": self.cfg.to_dict(),
            "lstmctl_version": __version__,
        }

    def best_checkpoint(self) -> dict[str, Any]:
        return {
            "epoch": self.best.epoch,
            "model": self.best.weights,
            "best": self.best.state_dict(),
            "config": self.cfg.to_dict(),
            "lstmctl_version": __version__,
        }

    def save(self, run: RunDir) -> None:
        """Write best.pt (when it changed) and last.pt, each atomically."""
        # best.pt first: a kill between the two writes leaves a best.pt at most as new as last.pt's
        # record of it, and a resumed run rewrites it identically when it reaches that epoch again
        if self.best.dirty and self.best.weights is not None:
            ckpt.save(self.best_checkpoint(), run.checkpoint("best"))
            self.best.dirty = False
        # the replaced last.pt stays as last.prev.pt: resume's fallback if last.pt is damaged
        ckpt.save(self.last_checkpoint(), run.checkpoint("last"), keep_previous=True)

    def restore(self, st: dict[str, Any], run: RunDir, device: torch.device) -> None:
        """Put a loaded last.pt back; the global RNGs last, so nothing after them draws out of turn."""
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        if self.sched is not None and st.get("scheduler") is not None:
            self.sched.load_state_dict(st["scheduler"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.epoch = int(st["epoch"])
        self.step_in_epoch = int(st.get("step_in_epoch", 0))
        p = st.get("partial") or {}  # absent in checkpoints written at an epoch's end by older versions
        self.losses = [float(v) for v in p.get("losses", torch.zeros(0)).tolist()]
        self.sizes = [int(v) for v in p.get("sizes", torch.zeros(0)).tolist()]
        self.seconds = float(p.get("seconds", 0.0))
        self.carry = _to_device(st.get("carry"), device)
        best_path = run.checkpoint("best")
        weights = {k: v.to(device) for k, v in ckpt.load(best_path)["model"].items()} if best_path.exists() else None
        self.best.load_state_dict(st["best"], weights)
        self.stopper.load_state_dict(st["early_stopping"])
        ckpt.set_rng_state(st["rng"])


def detach(state):
    """A stateful run's carried state, cut from the graph of the step that made it (values kept)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach(s) for s in state)


def _to_cpu(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    return tuple(_to_cpu(s) for s in state)


def _to_device(state, device):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.to(device)
    return tuple(_to_device(s, device) for s in state)
