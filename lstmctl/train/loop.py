"""The training loop: one loop for every task. setup -> fit -> save -> close.

Exactness: the data order of epoch e is a permutation drawn from a generator seeded with
(seed, e), so it never depends on earlier epochs; everything else that moves (model, optimizer,
scheduler, global RNG states, early-stopping counters, best value, the partial epoch when
interrupted mid-epoch) is in the checkpoint. A resumed run therefore continues bit-for-bit on CPU.
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import torch

from lstmctl import __version__
from lstmctl.config import Config
from lstmctl.data.base import DataBundle
from lstmctl.errors import ConfigError, Interrupted, LstmctlError, RunFailed
from lstmctl.experiment import loss_name, make_criterion
from lstmctl.models.base import count_parameters
from lstmctl.models.kernel import describe as describe_kernel
from lstmctl.runs import RunDir, utcnow, write_text_atomic
from lstmctl.train import checkpoint as ckpt
from lstmctl.train.progress import ProgressReporter

METRIC_FIELDS = ["epoch", "train_loss", "val_loss", "lr", "seconds"]
EVAL_BATCH = 4096


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def auto_threads(n_params: int) -> int:
    """train.threads: auto. Measured with benchmarks/bench_threads.py (see README, Performance):

    - under 20k parameters one thread wins: the hand-offs between threads cost more than they save;
    - above, never more threads than idle cores: OpenMP threads that share a busy core spin and wait,
      and a step then runs several times slower than on one thread (on a 2-core box running other jobs,
      1 thread beat 2 by 3-12x at every size up to 290k parameters).
    """
    if n_params < 20_000:
        return 1
    try:
        busy = os.getloadavg()[0]  # runnable processes, averaged over the last minute
    except (AttributeError, OSError):
        busy = 0.0
    idle = max(1, int((os.cpu_count() or 1) - busy + 0.5))
    return max(1, min(torch.get_num_threads(), idle))


def pick_threads(cfg: Config, n_params: int, device: torch.device) -> None:
    """Set torch's CPU thread count: train.threads, or auto_threads() for the model's size and the idle cores."""
    if device.type != "cpu":
        return
    t = cfg.train.threads
    if t == "auto":
        t = auto_threads(n_params)
    if t != torch.get_num_threads():
        torch.set_num_threads(t)


def setup_precision(precision: str, device: torch.device):
    """(what runs, autocast dtype or None, GradScaler or None). bf16/fp16 autocast on CUDA only.

    Elsewhere the run trains in fp32 with a warning: CPU autocast is slower than fp32 for LSTMs, and a
    config written for a GPU box (device: auto) should still run on a laptop.
    """
    if precision == "fp32":
        return "fp32", None, None
    if device.type != "cuda":
        print(f"warning: train.precision={precision} needs CUDA; training on {device} in fp32", file=sys.stderr)
        return "fp32", None, None
    if precision == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise ConfigError(f"train.precision=bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16 or fp32")
        return "bf16", torch.bfloat16, None
    return "fp16", torch.float16, torch.amp.GradScaler("cuda")


def compile_model(net: torch.nn.Module, model: torch.nn.Module, quiet: bool = False):
    """torch.compile the (possibly DDP-wrapped) model; returns (compiled, seconds spent setting it up).

    Tracing happens lazily at the first step, so its cost lands in epoch 1's `seconds`; the set-up
    (importing the compiler) is returned here and recorded in run.json as compile_s.
    """
    t0 = time.perf_counter()
    compiled = torch.compile(net)
    if not quiet and any(isinstance(m, torch.nn.RNNBase) for m in model.modules()):
        print(
            "note: torch.compile runs nn.LSTM/GRU/RNN layers eagerly (Dynamo does not trace them); "
            "train.compile pays off with the hand-built cells",
            file=sys.stderr,
        )
    return compiled, time.perf_counter() - t0


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=g)


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(_detach(s) for s in state)


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    params = list(model.parameters())
    if t.optimizer in ("adam", "adamw"):
        # The fused kernel updates every parameter in one pass: ~14% less time per step than the
        # default per-tensor Adam on a 16-unit LSTM (benchmarks/bench_train.py). CPU and CUDA only.
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
        cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused or None)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def make_scheduler(cfg: Config, opt, steps_per_epoch: int):
    s = cfg.train.scheduler
    sched = torch.optim.lr_scheduler
    if s.name == "step":
        return sched.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=cfg.train.epochs, eta_min=s.min_lr)
    if s.name == "plateau":
        return sched.ReduceLROnPlateau(opt, factor=s.factor, patience=s.patience, min_lr=s.min_lr)
    if s.name == "onecycle":
        return sched.OneCycleLR(
            opt,
            max_lr=s.max_lr or cfg.train.lr,
            total_steps=cfg.train.epochs * steps_per_epoch,
            pct_start=s.pct_start,
        )
    return None


def stateful_order(n: int, batch_size: int) -> torch.Tensor:
    """Order chunks so that row j of every batch continues row j of the batch before.

    With n consecutive chunks and batches of B, row j reads chunks j·(n/B), j·(n/B)+1, ...: B streams.
    """
    if batch_size >= n:
        return torch.arange(n)
    return torch.arange(n).view(batch_size, n // batch_size).t().reshape(-1)


def check_stateful(cfg: Config, n_train: int) -> None:
    bs = cfg.train.batch_size
    if cfg.train.stateful and bs is not None and bs < n_train and n_train % bs:
        raise ConfigError(
            f"train.stateful needs the {n_train} training sequences to split into equal streams: "
            f"set train.batch_size to a divisor of {n_train} (e.g. 1) or null"
        )


def evaluate_loss(model, split, criterion, device, stateful: bool) -> float:
    """Mean loss over a split, in eval mode, without gradients.

    Stateful runs read the split's chunks one after another, carrying the state, as one series.
    """
    model.eval()
    total = torch.zeros((), device=device, dtype=torch.float64)
    n = len(split)
    step = 1 if stateful else EVAL_BATCH
    state = None
    with torch.no_grad():
        for lo in range(0, n, step):
            xb = split.x[lo : lo + step]
            yb = split.y[lo : lo + step]
            out, new_state = model(xb, state)
            state = new_state if stateful else None
            total += criterion(out, yb).double() * xb.shape[0]
    model.train()
    return float(total / n)


class Trainer:
    """Trains one run. `resume` is a loaded last.pt (or None for a fresh start)."""

    def __init__(
        self,
        cfg: Config,
        run: RunDir,
        bundle: DataBundle,
        model: torch.nn.Module,
        device: torch.device,
        *,
        resume: dict[str, Any] | None = None,
        epochs: int | None = None,
        quiet: bool = False,
        dist=None,
    ):
        self.cfg, self.run, self.bundle, self.device = cfg, run, bundle, device
        self.dist = dist  # lstmctl.train.distributed.Dist or None
        self.is_main = dist is None or dist.rank == 0
        self.total_epochs = epochs or cfg.train.epochs
        self.quiet = quiet or not self.is_main
        self.model = model.to(device)
        self.n_params = count_parameters(self.model)
        self.lstm_kernel = describe_kernel(self.model, self.device)  # builds lstmctl's C loops if needed
        self.net = dist.wrap(self.model) if dist is not None else self.model  # DDP wrapper or the model
        self.compile_s = None
        if cfg.train.compile:
            self.net, self.compile_s = compile_model(self.net, self.model, quiet=self.quiet)
        self.precision, self.amp_dtype, self.scaler = setup_precision(cfg.train.precision, device)
        self.train_split = bundle.train.to(device)
        self.val_split = bundle.val.to(device) if bundle.val is not None else None
        self.criterion = make_criterion(loss_name(cfg, bundle.task), bundle.task)
        self.opt = make_optimizer(cfg, self.model)
        bs = cfg.train.batch_size
        n = len(self.train_split)
        self.batch_size = n if bs is None or bs >= n else bs
        self.steps_per_epoch = math.ceil(self._shard_len(n) / self.batch_size)
        self.check_every = 1 if device.type == "cpu" else 32  # steps between loss checks (each one syncs)
        self.sched = make_scheduler(cfg, self.opt, self.steps_per_epoch)
        self.monitor = "val_loss" if self.val_split is not None else "train_loss"
        es = cfg.train.early_stopping
        self.es_monitor = (es.monitor if self.val_split is not None else "train_loss") if es else None
        # counters that resume restores
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0
        self.partial: dict[str, Any] = {"losses": [], "sizes": [], "seconds": 0.0}
        self.carry = None
        self.best_value = math.inf
        self.best_epoch = 0
        self.es_best = math.inf
        self.es_bad = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_dirty = False
        self._stop_signal: int | None = None
        if resume is not None:
            self._restore(resume)

    # ------------------------------------------------------------------ sharding (DDP)
    def _shard_len(self, n: int) -> int:
        if self.dist is None:
            return n
        return math.ceil(n / self.dist.world_size)

    def _batches(self, epoch: int) -> list[torch.Tensor | None]:
        n = len(self.train_split)
        shuffle = self.cfg.train.shuffle and not self.cfg.train.stateful
        if self.dist is None and self.batch_size >= n:
            return [None]  # one step on the whole split: its order cannot matter, so no permutation, no copy
        order = stateful_order(n, self.batch_size) if self.cfg.train.stateful else epoch_order(self.cfg.seed, epoch, n, shuffle)
        if self.dist is not None:  # DistributedSampler semantics: pad by wrapping, then stride
            per = math.ceil(n / self.dist.world_size)
            padded = torch.cat([order, order[: per * self.dist.world_size - n]]) if per * self.dist.world_size > n else order
            order = padded[self.dist.rank :: self.dist.world_size]
        return list(order.to(self.device).split(self.batch_size))

    # ------------------------------------------------------------------ checkpoint state
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "partial": {
                "losses": torch.tensor(self.partial["losses"], dtype=torch.float64),
                "sizes": torch.tensor(self.partial["sizes"], dtype=torch.int64),
                "seconds": float(self.partial["seconds"]),
            },
            "carry": _to_cpu(self.carry),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best": {"value": self.best_value, "epoch": self.best_epoch, "monitor": self.monitor},
            "early_stopping": {"best": self.es_best, "bad_epochs": self.es_bad},
            "rng": ckpt.rng_state(),
            "config": self.cfg.to_dict(),
            "lstmctl_version": __version__,
        }

    def _restore(self, st: dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        if self.sched is not None and st.get("scheduler") is not None:
            self.sched.load_state_dict(st["scheduler"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.epoch = int(st["epoch"])
        self.step_in_epoch = int(st.get("step_in_epoch", 0))
        p = st.get("partial") or {}
        self.partial = {
            "losses": [float(v) for v in p.get("losses", torch.zeros(0)).tolist()],
            "sizes": [int(v) for v in p.get("sizes", torch.zeros(0)).tolist()],
            "seconds": float(p.get("seconds", 0.0)),
        }
        self.carry = _to_device(st.get("carry"), self.device)
        self.best_value = float(st["best"]["value"])
        self.best_epoch = int(st["best"]["epoch"])
        self.es_best = float(st["early_stopping"]["best"])
        self.es_bad = int(st["early_stopping"]["bad_epochs"])
        best_path = self.run.checkpoint("best")
        if best_path.exists():
            self.best_state = {k: v.to(self.device) for k, v in ckpt.load(best_path)["model"].items()}
        ckpt.set_rng_state(st["rng"])

    def save(self, *, last: bool = True) -> None:
        if not self.is_main:
            return
        self._metrics_file.flush()
        # best.pt first: a kill between the two writes leaves a best.pt at most as new as last.pt's
        # record of it, and a resumed run rewrites it identically when it reaches that epoch again
        if self.best_dirty and self.best_state is not None:
            ckpt.save(
                {
                    "epoch": self.best_epoch,
                    "model": self.best_state,
                    "best": {"value": self.best_value, "epoch": self.best_epoch, "monitor": self.monitor},
                    "config": self.cfg.to_dict(),
                    "lstmctl_version": __version__,
                },
                self.run.checkpoint("best"),
            )
            self.best_dirty = False
        if last:  # the replaced last.pt stays as last.prev.pt: resume's fallback if last.pt is damaged
            ckpt.save(self._state(), self.run.checkpoint("last"), keep_previous=True)
        self.run.update(epochs_done=self.epoch, best={"epoch": self.best_epoch, "value": _finite(self.best_value), "monitor": self.monitor})
        self._last_save = time.perf_counter()
        self._saved_at = (self.epoch, self.step_in_epoch)

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame):
        if self._stop_signal is not None:  # second signal: leave now; atomic writes keep files whole
            if self.dist is not None and time.monotonic() - self._signal_at < 2.0:
                return  # torchrun forwards the terminal's Ctrl-C: the same press, not a second one
            code = 130 if signum == signal.SIGINT else 143
            if self.is_main:
                try:  # files stay whole (atomic writes); say what happened, resume works from last.pt
                    _write_stderr(f"\n{signal.Signals(signum).name} again: quitting now without saving this step\n")
                    self.run.update(status="interrupted", ended=utcnow())
                except BaseException:
                    pass
            os._exit(code)
        self._stop_signal = signum
        self._signal_at = time.monotonic()
        if self.is_main:  # os.write: a buffered print here could collide with one the loop is doing
            _write_stderr(
                f"\n{signal.Signals(signum).name}: stopping after this step and saving (press Ctrl-C again to quit at once)\n"
            )

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    # ------------------------------------------------------------------ the loop
    def _open_metrics(self):
        rows = self.run.read_metrics() if self.epoch > 0 else []
        # keep complete rows up to the checkpoint's epoch (a killed process may have left a cut line)
        rows = [r for r in rows if isinstance(r.get("epoch"), int) and r["epoch"] <= self.epoch and r.get("seconds") is not None]
        rows = [r for i, r in enumerate(rows) if r["epoch"] == i + 1]
        if not self.is_main:
            f = open(os.devnull, "w")
            return f, csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in METRIC_FIELDS})
        write_text_atomic(self.run.metrics_csv, buf.getvalue())  # a kill here keeps the old file whole
        f = open(self.run.metrics_csv, "a", newline="", encoding="utf-8")
        return f, csv.DictWriter(f, fieldnames=METRIC_FIELDS)

    def fit(self) -> dict[str, Any]:
        if not self.is_main:
            return self._fit()
        with self.run.lock():  # one process per run: a second train/resume of it is refused
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        cfg = self.cfg
        pick_threads(cfg, self.n_params, self.device)
        self._metrics_file, writer = self._open_metrics()
        self._last_save = time.perf_counter()
        self._saved_at = None
        progress = ProgressReporter(self.total_epochs, self.epoch, cfg.train.log_every_s, enabled=not self.quiet)
        old_handlers = self._install_signals()
        tensorboard = None
        if cfg.logging.tensorboard and self.is_main:
            from lstmctl.train.tracking import TensorBoardLogger

            tensorboard = TensorBoardLogger(self.run.path)
        stop_reason = "epochs"
        try:
            lstm_kernel = self.lstm_kernel
            if lstm_kernel and lstm_kernel.startswith("torch (the C kernel") and not self.quiet:
                print(f"note: the hand-built LSTM runs on its slower pure-torch path: {lstm_kernel[7:-1]}", file=sys.stderr)
            if self.is_main:
                self.run.update(
                    status="running", pid=os.getpid(), host=socket.gethostname(), started=utcnow(), params=self.n_params,
                    lstm_kernel=lstm_kernel,
                    precision=self.precision, compile=cfg.train.compile, threads=torch.get_num_threads(),
                    **({"compile_s": round(self.compile_s, 3)} if self.compile_s is not None else {}),
                )
            progress.message(
                f"[bold]{self.run.id}[/]: {cfg.model['name']} ({self.n_params:,} parameters) on {cfg.data['name']}, "
                f"device {self.device}, {len(self.train_split)} training sequences"
            )
            if self.epoch >= self.total_epochs:
                stop_reason = "already complete"
            while self.epoch < self.total_epochs:
                row = self._run_epoch(self.epoch + 1)
                if row is None:  # interrupted mid-epoch
                    self.save()
                    raise self._interrupted()
                self.epoch += 1
                writer.writerow({k: ("" if row[k] is None else row[k]) for k in METRIC_FIELDS})
                if tensorboard is not None:
                    tensorboard.log(row)
                progress.epoch(self.epoch, row)
                reason = self._after_epoch(row)
                interval = cfg.train.checkpoint_every_s
                if reason or self.epoch == self.total_epochs or time.perf_counter() - self._last_save >= interval:
                    self.save()
                if reason:
                    stop_reason = reason
                    break
                if self.dist is not None and self.dist.agree(self._stop_signal is not None):
                    self._stop_signal = self._stop_signal or signal.SIGINT  # a signal on any rank stops them all
                if self._stop_signal is not None:
                    if self._saved_at != (self.epoch, self.step_in_epoch):
                        self.save()
                    raise self._interrupted()
            if self._saved_at != (self.epoch, self.step_in_epoch):
                self.save()
        except torch.OutOfMemoryError as e:
            self._fail(
                f"out of memory on {self.device} at epoch {self.epoch + 1} with batch_size {self.batch_size}; "
                "lower train.batch_size or model.hidden_size",
                e,
            )
        except RunFailed as e:
            self._fail(str(e), e)
        except OSError as e:  # metrics.csv or run.json could not be written (disk full, read-only)
            self._fail(f"could not write to {self.run.path}: {e.strerror or e}", e)
        except Interrupted as e:
            if self.is_main:
                self.run.update(status="interrupted", ended=utcnow(), epochs_done=self.epoch)
            raise e
        finally:
            progress.close()
            if tensorboard is not None:
                tensorboard.close()
            self._metrics_file.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        summary = {
            "epochs_done": self.epoch,
            "stop_reason": stop_reason,
            "best": {"epoch": self.best_epoch, "value": _finite(self.best_value), "monitor": self.monitor},
            "final": self._last_losses,
        }
        if self.is_main:
            self.run.update(status="completed", ended=utcnow(), **summary)
        return summary

    _last_losses: dict[str, Any] = {}

    def _interrupted(self) -> Interrupted:
        name = signal.Signals(self._stop_signal).name
        where = (
            f"after epoch {self.epoch}" if self.step_in_epoch == 0
            else f"in epoch {self.epoch + 1} after step {self.step_in_epoch} of {self.steps_per_epoch}"
        )
        return Interrupted(
            f"{name}: run {self.run.id} interrupted {where}; state saved. Continue with: lstmctl resume {self.run.id}",
            self._stop_signal,
        )

    def _fail(self, message: str, exc: BaseException):
        if self.is_main:
            try:
                self.run.update(status="failed", ended=utcnow(), error=message, epochs_done=self.epoch)
            except (OSError, LstmctlError):  # the disk that failed may refuse run.json too
                pass
        saved = getattr(self, "_saved_at", None)
        if saved is not None:
            kept = f"its last good checkpoint (epoch {saved[0]}) is kept in {self.run.checkpoints}"
        elif self.run.checkpoint("last").exists():
            kept = f"its last good checkpoint is kept in {self.run.checkpoints}"
        else:
            kept = "no checkpoint had been saved yet"
        raise RunFailed(f"run {self.run.id} failed: {message}; {kept}") from exc

    def _run_epoch(self, epoch: int) -> dict[str, Any] | None:
        """One epoch; None if a signal arrived (state is then saved mid-epoch)."""
        t0 = time.perf_counter() - self.partial["seconds"]
        if not self.net.training:  # module.train() walks every submodule: skip it when nothing changes
            self.net.train()
        batches = self._batches(epoch)
        stateful = self.cfg.train.stateful
        clip = self.cfg.train.grad_clip
        onecycle = self.sched is not None and self.cfg.train.scheduler.name == "onecycle"
        x_all, y_all = self.train_split.x, self.train_split.y
        step_losses: list[torch.Tensor] = []
        sizes: list[int] = []
        start = self.step_in_epoch
        state = self.carry if stateful else None
        for i in range(start, len(batches)):
            idx = batches[i]
            xb, yb = (x_all, y_all) if idx is None else (x_all[idx], y_all[idx])
            if self.amp_dtype is None:
                out, new_state = self.net(xb, state)
                loss = self.criterion(out, yb)
            else:
                with torch.autocast(self.device.type, dtype=self.amp_dtype):
                    out, new_state = self.net(xb, state)
                    loss = self.criterion(out, yb)
            if stateful:
                state = _detach(new_state)
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
            if self._stop_signal is not None and i + 1 < len(batches) and self.dist is None:
                self._fold(step_losses, sizes, epoch, i + 1 - len(step_losses))
                self.step_in_epoch = i + 1
                self.carry = state
                self.partial["seconds"] = time.perf_counter() - t0
                return None
        self._fold(step_losses, sizes, epoch, len(batches) - len(step_losses))
        losses, sizes_ = self.partial["losses"], self.partial["sizes"]
        train_loss = math.fsum(v * w for v, w in zip(losses, sizes_)) / sum(sizes_)  # exact sum, in Python
        if self.dist is not None:
            train_loss = self.dist.mean(train_loss)
        self.step_in_epoch = 0
        self.partial = {"losses": [], "sizes": [], "seconds": 0.0}
        self.carry = None  # stateful: every epoch reads the series from its start, so from a zero state
        val_loss = None
        if self.val_split is not None:
            val_loss = evaluate_loss(self.model, self.val_split, self.criterion, self.device, stateful)
            if self.dist is not None:
                val_loss = self.dist.mean(val_loss)
            if not math.isfinite(val_loss):
                raise RunFailed(
                    f"the validation loss became {val_loss} at epoch {epoch} (the weights are no longer finite); "
                    "lower train.lr or set train.grad_clip"
                )
        lr = self.opt.param_groups[0]["lr"]
        self._last_losses = {"train_loss": train_loss, "val_loss": val_loss}
        return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr, "seconds": round(time.perf_counter() - t0, 6)}

    def _fold(self, step_losses, sizes, epoch, start):
        """Move step losses (steps start+1, start+2, ...) to the host (one sync) and check they are finite."""
        if not step_losses:
            return
        values = [step_losses[0].item()] if len(step_losses) == 1 else torch.stack(step_losses).tolist()
        for j, v in enumerate(values):  # plain floats: cheaper than tensor ops for a handful of values
            if not math.isfinite(v):
                first = epoch == 1 and start + j == 0  # before any update: the data, not the lr
                raise RunFailed(
                    f"the training loss became {v} at epoch {epoch}, step {start + j + 1}; "
                    + ("check the data for NaN or infinite values (or lower train.lr)" if first
                       else "lower train.lr or set train.grad_clip")
                )
        self.partial["losses"] += values
        self.partial["sizes"] += sizes

    def _snapshot_best(self) -> None:
        """Copy the weights into best_state; after the first time into the same tensors (no state_dict walk)."""
        live = getattr(self, "_live_state", None)
        if live is None or self.best_state is None or self.best_state.keys() != live.keys():
            self._live_state = live = self.model.state_dict(keep_vars=False)  # aliases of the parameters
            self.best_state = {k: v.detach().clone() for k, v in live.items()}
            return
        with torch.no_grad():
            torch._foreach_copy_(list(self.best_state.values()), list(live.values()))  # one call, not one per tensor

    def _after_epoch(self, row: dict[str, Any]) -> str | None:
        cfg = self.cfg
        value = row[self.monitor]
        if value is not None and math.isfinite(value) and value < self.best_value:
            self.best_value, self.best_epoch = value, self.epoch
            self._snapshot_best()
            self.best_dirty = True
        if self.sched is not None and cfg.train.scheduler.name != "onecycle":
            if cfg.train.scheduler.name == "plateau":
                self.sched.step(row[self.monitor])
            else:
                self.sched.step()
        if cfg.train.stop_at_loss is not None and row["train_loss"] < cfg.train.stop_at_loss:
            return "stop_at_loss"
        es = cfg.train.early_stopping
        if es is not None:
            v = row[self.es_monitor]
            if v < self.es_best - es.min_delta:
                self.es_best, self.es_bad = v, 0
            else:
                self.es_bad += 1
                if self.es_bad >= es.patience:
                    return "early_stopping"
        return None


def _write_stderr(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _finite(v: float) -> float | None:
    return v if v is not None and math.isfinite(v) else None


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
