"""Small pieces the loop calls once per fold of step losses or once per epoch: the finite-loss guards,
the best-model tracker (best.pt's weights), early stopping and the epoch hook (lstmctl tune's pruner).
Each stateful one has state_dict()/load_state_dict() so the checkpoint (train/state.py) carries it.
TensorBoard: tracking.py.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from lstmctl.errors import RunFailed
from lstmctl.runs import RunDir, utcnow
from lstmctl.schema import EarlyStopping

EpochHook = Callable[[int, dict[str, Any]], bool]
"""Called after each epoch (best model, schedule and stop rules done) with (epoch, metrics row); True
stops the run there, as pruned. lstmctl tune passes one that reports the monitored value to Optuna's
pruner. It keeps no state in the checkpoint: a pruned run resumed later trains on as an ordinary run."""


def record_pruned(run: RunDir, summary: dict[str, Any]) -> None:
    """run.json of a run the epoch hook stopped: status "pruned" and the epoch it stopped at."""
    run.update(status="pruned", ended=utcnow(), pruned_at=summary["epochs_done"], **summary)


def check_train_losses(values: list[float], epoch: int, start: int) -> None:
    """Stop on the first non-finite step loss (steps start+1, start+2, ... of `epoch`)."""
    for j, v in enumerate(values):  # plain floats: cheaper than tensor ops for a handful of values
        if not math.isfinite(v):
            first = epoch == 1 and start + j == 0  # before any update: the data, not the lr
            raise RunFailed(
                f"the training loss became {v} at epoch {epoch}, step {start + j + 1}; "
                + ("check the data for NaN or infinite values (or lower train.lr)" if first
                   else "lower train.lr or set train.grad_clip")
            )


def check_val_loss(value: float, epoch: int) -> None:
    if not math.isfinite(value):
        raise RunFailed(
            f"the validation loss became {value} at epoch {epoch} (the weights are no longer finite); "
            "lower train.lr or set train.grad_clip"
        )


def finite(v: float | None) -> float | None:
    """For run.json and summaries: inf/NaN (no best yet) become null."""
    return v if v is not None and math.isfinite(v) else None


def improves(value: float | None, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """A finite `value` better than `best` by more than `min_delta` in `mode`'s direction (min: lower, max: higher)."""
    if value is None or not math.isfinite(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


def worst(mode: str) -> float:
    """The starting best: anything finite improves on it."""
    return math.inf if mode == "min" else -math.inf


class BestModel:
    """The epoch with the best finite `monitor` so far (lowest in min mode, highest in max mode), and a
    copy of its weights (written as best.pt). Epochs that do not record the monitor are skipped."""

    def __init__(self, model: torch.nn.Module, monitor: str, mode: str = "min"):
        self.model, self.monitor, self.mode = model, monitor, mode
        self.value = worst(mode)
        self.epoch = 0
        self.weights: dict[str, torch.Tensor] | None = None
        self.dirty = False  # weights newer than best.pt
        self._live: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, row: dict[str, Any]) -> None:
        value = row.get(self.monitor)
        if improves(value, self.value, self.mode):
            self.value, self.epoch = value, epoch
            self._snapshot()
            self.dirty = True

    def _snapshot(self) -> None:
        """Copy the weights into `weights`; after the first time into the same tensors (no state_dict walk)."""
        live = self._live
        if live is None or self.weights is None or self.weights.keys() != live.keys():
            self._live = live = self.model.state_dict(keep_vars=False)  # aliases of the parameters
            self.weights = {k: v.detach().clone() for k, v in live.items()}
            return
        with torch.no_grad():
            torch._foreach_copy_(list(self.weights.values()), list(live.values()))  # one call, not one per tensor

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch, "monitor": self.monitor, "mode": self.mode}

    def load_state_dict(self, state: dict[str, Any], weights: dict[str, torch.Tensor] | None = None) -> None:
        """A checkpoint written before monitors had modes has none: it watched a loss, so min."""
        self.value = float(state["value"])
        self.epoch = int(state["epoch"])
        self.monitor = str(state.get("monitor", self.monitor))
        self.mode = str(state.get("mode", "min"))
        if weights is not None:
            self.weights = weights

    def summary(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "value": finite(self.value), "monitor": self.monitor, "mode": self.mode}


class EarlyStopper:
    """train.early_stopping: stop after `patience` epochs without a `min_delta` improvement of `monitor`.

    `monitor` and `mode` come resolved (train/setup.monitors). An epoch that does not record the
    monitor (train.val_every) neither improves nor counts against the patience.
    """

    def __init__(self, cfg: EarlyStopping | None, monitor: str | None = None, mode: str = "min"):
        self.cfg = cfg
        self.monitor = monitor if cfg else None
        self.mode = mode
        self.best = worst(mode)
        self.bad_epochs = 0

    def should_stop(self, row: dict[str, Any]) -> bool:
        if self.cfg is None:
            return False
        v = row.get(self.monitor)
        if v is None:
            return False
        if improves(v, self.best, self.mode, self.cfg.min_delta):
            self.best, self.bad_epochs = v, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.cfg.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "monitor": self.monitor, "mode": self.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.mode = str(state.get("mode", "min"))  # older checkpoints: a loss, watched in min mode
