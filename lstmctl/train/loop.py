"""The training loop, one for every task: Trainer(session, run).fit() sets up, runs the epochs, saves, closes.

Its parts: setup.py (threads, precision, compile, optimizer, schedule, data order), state.py (what
last.pt and best.pt hold: restored in full, a run continues bit-for-bit on CPU), recorder.py
(metrics.csv, run.json), signals.py (Ctrl-C), hooks.py (best model, early stopping, loss guards, the
epoch hook through which lstmctl tune's pruner stops a trial: the run ends with status "pruned").
After an epoch (every train.val_every-th, and the last) one pass over the validation split gives val_loss
and the task's val_<metric> columns; the monitor (train.monitor) picks best.pt and drives the rest.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from typing import Any

import torch

from lstmctl.errors import Interrupted, RunFailed
from lstmctl.evaluation import evaluate_loss, metric_columns, validation_metrics
from lstmctl.models.base import count_parameters
from lstmctl.models.layers import describe_kernel
from lstmctl.runs import RunDir
from lstmctl.session import Session, loss_name, make_criterion
from lstmctl.train import setup
from lstmctl.train.hooks import BestModel, EarlyStopper, EpochHook, check_train_losses, check_val_loss, record_pruned
from lstmctl.train.progress import ProgressReporter
from lstmctl.train.recorder import Recorder
from lstmctl.train.signals import StopSignal
from lstmctl.train.state import TrainState, detach
from lstmctl.train.tracking import TensorBoardLogger


class Trainer:
    """Trains one run. `resume` is a loaded last.pt (None: a fresh start); `epochs` overrides train.epochs;
    `epoch_hook(epoch, row)` returning True stops the run as pruned (hooks.EpochHook)."""

    def __init__(self, session: Session, run: RunDir, *, resume: dict[str, Any] | None = None,
                 epochs: int | None = None, quiet: bool = False, dist=None, epoch_hook: EpochHook | None = None):
        cfg, device = session.cfg, session.device
        self.cfg, self.run, self.data, self.device = cfg, run, session.data, device
        self.dist = dist  # lstmctl.train.distributed.Dist or None
        self.is_main = dist is None or dist.rank == 0
        self.total_epochs = epochs or cfg.train.epochs
        self.quiet = quiet or not self.is_main
        self.model = session.model.to(device)
        self.n_params = count_parameters(self.model)
        self.lstm_kernel = describe_kernel(self.model, device)  # builds lstmctl's C loops if needed
        self.net = dist.wrap(self.model) if dist is not None else self.model  # DDP wrapper or the model
        self.net, self.compile_s = setup.compile_model(self.net, self.model, self.quiet) if cfg.train.compile else (self.net, None)
        self.precision, self.amp_dtype, self.scaler = setup.setup_precision(cfg.train.precision, device)
        self.train_split = self.data.train.to(device)
        self.val_split = self.data.val.to(device) if self.data.val is not None else None
        self.criterion = make_criterion(loss_name(cfg, self.data.task), self.data.task)
        self.opt = setup.make_optimizer(cfg, self.model)
        n, bs = len(self.train_split), cfg.train.batch_size
        self.batch_size = n if bs is None or bs >= n else bs
        self.steps_per_epoch = math.ceil(setup.shard_len(n, dist) / self.batch_size)
        self.check_every = 1 if device.type == "cpu" else 32  # steps between loss checks (each one syncs)
        mon = setup.monitors(cfg, self.data)  # a monitor the run never records: ConfigError
        self.monitor = mon.name
        self.sched = setup.make_scheduler(cfg, self.opt, self.steps_per_epoch, mon.mode)
        self.best = BestModel(self.model, mon.name, mon.mode)
        stopper = EarlyStopper(cfg.train.early_stopping, mon.stop, mon.stop_mode)
        self.state = TrainState(cfg, self.model, self.opt, self.sched, self.scaler, self.best, stopper)
        self.recorder = Recorder(run, metric_columns(self.data), enabled=self.is_main)
        self.stop = StopSignal(main=self.is_main, ddp=dist is not None, on_quit=self.recorder.quitting)
        self.last_losses: dict[str, Any] = {}
        self.epoch_hook = epoch_hook
        self._saved_at: tuple[int, int] | None = None  # (epoch, step) of this process's last save
        if resume is not None:
            self.state.restore(resume, run, device)

    @property
    def epoch(self) -> int:  # completed epochs
        return self.state.epoch

    def fit(self) -> dict[str, Any]:
        if not self.is_main:
            return self._fit()
        with self.run.lock():  # one process per run: a second train/resume of it is refused
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        setup.pick_threads(cfg, self.n_params, self.device)
        tensorboard = TensorBoardLogger(self.run.path, enabled=cfg.logging.tensorboard and self.is_main)
        self.recorder.open_metrics(st.epoch)
        self._last_save = time.perf_counter()
        progress = ProgressReporter(self.total_epochs, st.epoch, cfg.train.log_every_s, enabled=not self.quiet, monitor=self.monitor)
        stop_reason = "epochs"
        with self.stop:  # a first Ctrl-C/SIGTERM from here on sets stop.signum: checked after each step
            try:
                self._announce(progress)
                if st.epoch >= self.total_epochs:
                    stop_reason = "already complete"
                while st.epoch < self.total_epochs:
                    row = self._run_epoch(st.epoch + 1)
                    if row is None:  # interrupted mid-epoch
                        self.save()
                        raise self._interrupted()
                    st.epoch += 1
                    self.recorder.epoch_row(row)
                    tensorboard.log(row)
                    progress.epoch(st.epoch, row)
                    reason = self._after_epoch(row)
                    if reason or st.epoch == self.total_epochs or time.perf_counter() - self._last_save >= cfg.train.checkpoint_every_s:
                        self.save()
                    if reason:
                        stop_reason = reason
                        break
                    if self.dist is not None and self.dist.agree(self.stop.signum is not None):
                        self.stop.signum = self.stop.signum or signal.SIGINT  # a signal on any rank stops them all
                    if self.stop.signum is not None:
                        if self._saved_at != (st.epoch, st.step_in_epoch):
                            self.save()
                        raise self._interrupted()
                if self._saved_at != (st.epoch, st.step_in_epoch):
                    self.save()
            except (torch.OutOfMemoryError, RunFailed, OSError) as e:  # the run cannot go on: status failed, one line
                raise self.recorder.failed(self._failure(e), st.epoch, self._saved_at) from e
            except Interrupted:
                self.recorder.interrupted(st.epoch)
                raise
            finally:
                progress.close()
                tensorboard.close()
                self.recorder.close()
        summary = {"epochs_done": st.epoch, "stop_reason": stop_reason, "best": self.best.summary(), "final": self.last_losses}
        if self.dist is not None:
            self.dist.ended(summary)
        if stop_reason == "pruned" and self.is_main:  # lstmctl tune's pruner stopped it (no hook under DDP)
            record_pruned(self.run, summary)
        else:
            self.recorder.completed(summary)
        return summary

    def _announce(self, progress: ProgressReporter) -> None:
        if self.lstm_kernel and self.lstm_kernel.startswith("torch (the C kernel") and not self.quiet:
            print(f"note: the hand-built LSTM runs on its slower pure-torch path: {self.lstm_kernel[7:-1]}", file=sys.stderr)
        self.recorder.running(
            params=self.n_params, lstm_kernel=self.lstm_kernel, precision=self.precision, compile=self.cfg.train.compile,
            threads=torch.get_num_threads(), **({"compile_s": round(self.compile_s, 3)} if self.compile_s is not None else {}),
        )
        progress.message(
            f"[bold]{self.run.id}[/]: {self.cfg.model['name']} ({self.n_params:,} parameters) on {self.cfg.data['name']}, "
            f"device {self.device}, {len(self.train_split)} training sequences"
        )

    def save(self) -> None:
        if not self.is_main:
            return
        self.recorder.flush()
        self.state.save(self.run)
        self.recorder.saved(self.state.epoch, self.best.summary())
        self._last_save = time.perf_counter()
        self._saved_at = (self.state.epoch, self.state.step_in_epoch)

    def _interrupted(self) -> Interrupted:
        return self.stop.interrupted(self.run.id, self.state.epoch, self.state.step_in_epoch, self.steps_per_epoch)

    def _failure(self, e: BaseException) -> str:
        if isinstance(e, torch.OutOfMemoryError):
            return (f"out of memory on {self.device} at epoch {self.state.epoch + 1} with batch_size {self.batch_size}; "
                    "lower train.batch_size or model.hidden_size")
        if isinstance(e, OSError):  # metrics.csv or run.json could not be written (disk full, read-only)
            return f"could not write to {self.run.path}: {e.strerror or e}"
        return str(e)  # RunFailed: a non-finite loss, a checkpoint that could not be written

    def _run_epoch(self, epoch: int) -> dict[str, Any] | None:
        """One epoch; None if a signal arrived (state is then saved mid-epoch)."""
        st = self.state
        t0 = time.perf_counter() - st.seconds
        if not self.net.training:  # module.train() walks every submodule: skip it when nothing changes
            self.net.train()
        batches = setup.epoch_batches(self.cfg, len(self.train_split), self.batch_size, epoch, self.device, self.dist)
        stateful = self.cfg.train.stateful
        clip = self.cfg.train.grad_clip
        onecycle = self.sched is not None and self.cfg.train.scheduler.name == "onecycle"
        x_all, y_all = self.train_split.x, self.train_split.y
        augment, rank = self.data.augment, 0 if self.dist is None else self.dist.rank
        step_losses: list[torch.Tensor] = []
        sizes: list[int] = []
        state = st.carry if stateful else None
        for i in range(st.step_in_epoch, len(batches)):
            idx = batches[i]
            xb, yb = (x_all, y_all) if idx is None else (x_all[idx], y_all[idx])
            if augment is not None:
                xb = augment(xb, setup.batch_generator(self.cfg.seed, epoch, i, rank))
            if self.amp_dtype is None:
                out, new_state = self.net(xb, state)
                loss = self.criterion(out, yb)
            else:
                with torch.autocast(self.device.type, dtype=self.amp_dtype):
                    out, new_state = self.net(xb, state)
                    loss = self.criterion(out, yb)
            if stateful:
                state = detach(new_state)
            self.opt.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                self.opt.step()
            else:  # fp16: scale the loss so small gradients survive, unscale before clipping
                self.scaler.scale(loss).backward()
                if clip is not None:
                    self.scaler.unscale_(self.opt)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                self.scaler.step(self.opt)
                self.scaler.update()
            if onecycle:
                self.sched.step()
            step_losses.append(loss.detach())  # stays on the device: no sync per step
            sizes.append(xb.shape[0])
            if len(step_losses) >= self.check_every:  # a NaN stops the run within check_every steps
                self._fold(step_losses, sizes, epoch, i + 1 - len(step_losses))
                step_losses, sizes = [], []
            if self.stop.signum is not None and i + 1 < len(batches) and self.dist is None:
                self._fold(step_losses, sizes, epoch, i + 1 - len(step_losses))
                st.step_in_epoch, st.carry, st.seconds = i + 1, state, time.perf_counter() - t0
                return None
        self._fold(step_losses, sizes, epoch, len(batches) - len(step_losses))
        train_loss = st.epoch_loss()
        if self.dist is not None:
            train_loss = self.dist.mean(train_loss)
        st.next_epoch()
        row = {"epoch": epoch, "train_loss": train_loss}
        every = self.cfg.train.val_every
        if self.val_split is not None and (epoch % every == 0 or epoch == self.total_epochs):
            row.update(self._validate(epoch))
        self.last_losses = {"train_loss": train_loss, "val_loss": row.get("val_loss")}
        return {**row, "lr": self.opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 6)}

    def _validate(self, epoch: int) -> dict[str, Any]:
        """val_loss and val_<metric> from one pass over the validation split; under DDP rank 0 alone
        makes it and every rank gets its numbers (each rank holds the same weights)."""
        values = None
        if self.is_main:
            outputs: list[torch.Tensor] = []
            loss = evaluate_loss(self.model, self.val_split, self.criterion, self.device, self.cfg.train.stateful, outputs=outputs)
            values = {"val_loss": loss, **(validation_metrics(self.data, outputs) if math.isfinite(loss) else {})}
        if self.dist is not None:
            values = self.dist.from_rank0(values)
        check_val_loss(values["val_loss"], epoch)
        return values

    def _fold(self, step_losses: list[torch.Tensor], sizes: list[int], epoch: int, start: int) -> None:
        """Move step losses (steps start+1, start+2, ...) to the host (one sync), check them, add them to the epoch."""
        if not step_losses:
            return
        values = [step_losses[0].item()] if len(step_losses) == 1 else torch.stack(step_losses).tolist()
        check_train_losses(values, epoch, start)
        self.state.add_losses(values, sizes)

    def _after_epoch(self, row: dict[str, Any]) -> str | None:
        """Best model, the per-epoch schedule, then the stop rules; the reason to stop, or None."""
        self.best.update(self.state.epoch, row)
        name = self.cfg.train.scheduler.name
        if self.sched is not None and name != "onecycle":  # onecycle steps per batch, in _run_epoch
            if name != "plateau":
                self.sched.step()
            elif row.get(self.monitor) is not None:  # plateau counts the epochs that record the monitor
                self.sched.step(row[self.monitor])
        stop_at = self.cfg.train.stop_at_loss
        if stop_at is not None and row["train_loss"] < stop_at:
            return "stop_at_loss"
        if self.state.stopper.should_stop(row):
            return "early_stopping"
        if self.epoch_hook is not None and self.epoch_hook(self.state.epoch, row):
            return "pruned"
        return None

