"""What the loop is built from: threads, precision, compile, optimizer, schedule, the data order and
the monitor (which column picks best.pt and drives early stopping and the plateau schedule).

Exactness: the data order of epoch e is a permutation drawn from its own generator seeded with
(seed, e), so it never depends on earlier epochs and a resumed run draws the same batches.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import torch

from lstmctl import metrics
from lstmctl.config import Config
from lstmctl.data.base import DataBundle
from lstmctl.errors import ConfigError
from lstmctl.evaluation import TAIL_COLUMNS, metric_columns


def busy_cores(sample_s: float = 0.1) -> float:
    """How many cores other work keeps busy now: /proc/stat's idle share over `sample_s` on Linux.

    Not the load average: it counts tasks blocked on I/O too, and on some VMs it sits at ~1 with the
    CPUs idle (the 2-core box of docs/performance.md), which made auto pick 1 thread on an idle
    machine and Fashion-MNIST epochs 1.5x slower. The load average is the fallback elsewhere.
    """
    def ticks():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    try:
        total0, idle0 = ticks()
        time.sleep(sample_s)
        total1, idle1 = ticks()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]  # runnable processes, averaged over the last minute
        except (AttributeError, OSError):
            return 0.0
    elapsed = total1 - total0
    return 0.0 if elapsed <= 0 else (os.cpu_count() or 1) * (1 - (idle1 - idle0) / elapsed)


def auto_threads(n_params: int) -> int:
    """train.threads: auto. Measured with benchmarks/bench_threads.py (see docs/performance.md):

    - under 20k parameters one thread wins: the hand-offs between threads cost more than they save;
    - above, never more threads than idle cores: OpenMP threads that share a busy core spin and wait,
      and a step then runs several times slower than on one thread (on a 2-core box running other jobs,
      1 thread beat 2 by 3-12x at every size up to 290k parameters).
    """
    if n_params < 20_000:
        return 1
    idle = max(1, int((os.cpu_count() or 1) - busy_cores() + 0.5))
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


def make_scheduler(cfg: Config, opt, steps_per_epoch: int, mode: str = "min"):
    """The learning-rate schedule, or None. onecycle steps once per batch, the others once per epoch;
    plateau watches the monitor, in its mode (max: it decays when an accuracy stops rising)."""
    s = cfg.train.scheduler
    sched = torch.optim.lr_scheduler
    if s.name == "step":
        return sched.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=cfg.train.epochs, eta_min=s.min_lr)
    if s.name == "plateau":
        return sched.ReduceLROnPlateau(opt, mode=mode, factor=s.factor, patience=s.patience, min_lr=s.min_lr)
    if s.name == "onecycle":
        return sched.OneCycleLR(
            opt,
            max_lr=s.max_lr or cfg.train.lr,
            total_steps=cfg.train.epochs * steps_per_epoch,
            pct_start=s.pct_start,
        )
    return None


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=g)


def batch_generator(seed: int, epoch: int, step: int, rank: int = 0) -> torch.Generator:
    """The random numbers of one training batch's augmentation: from (seed, epoch, step, rank) alone,
    so a run resumed mid-epoch draws what it would have drawn, and ranks draw differently."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_033 + step) * 101 + rank)


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


def shard_len(n: int, dist) -> int:
    """Sequences this process trains on per epoch: all of them, or its share under DDP (padded up)."""
    return n if dist is None else math.ceil(n / dist.world_size)


def epoch_batches(cfg: Config, n: int, batch_size: int, epoch: int, device: torch.device, dist=None) -> list[torch.Tensor | None]:
    """The index tensors of epoch `epoch`'s batches, on `device`; [None] means one step on the whole split."""
    if dist is None and batch_size >= n:
        return [None]  # one step on the whole split: its order cannot matter, so no permutation, no copy
    stateful = cfg.train.stateful
    order = stateful_order(n, batch_size) if stateful else epoch_order(cfg.seed, epoch, n, cfg.train.shuffle)
    if dist is not None:  # DistributedSampler semantics: pad by wrapping, then stride
        per = shard_len(n, dist)
        padded = torch.cat([order, order[: per * dist.world_size - n]]) if per * dist.world_size > n else order
        order = padded[dist.rank :: dist.world_size]
    return list(order.to(device).split(batch_size))


# ---------------------------------------------------------------- the monitor


@dataclass(frozen=True)
class Monitors:
    """The resolved monitors of a run: best.pt and the plateau schedule watch `name`, early stopping `stop`."""

    name: str
    mode: str  # "min" or "max"
    stop: str | None  # None without train.early_stopping
    stop_mode: str


def recorded_columns(data: DataBundle) -> list[str]:
    """The metrics.csv columns a monitor can name: the losses and val_<metric>s the run fills in."""
    cols = [c for c in metric_columns(data) if c != "epoch" and c not in TAIL_COLUMNS]
    return cols if data.val is not None else [c for c in cols if c != "val_loss"]


def monitors(cfg: Config, data: DataBundle) -> Monitors:
    """train.monitor / monitor_mode / early_stopping.monitor resolved for this dataset, or a ConfigError
    naming the columns the run records when a monitor names one it never fills in."""
    t = cfg.train
    name = t.monitor or ("val_loss" if data.val is not None else "train_loss")
    _check_recorded("train.monitor", name, data)
    mode = metrics.mode_for(name) if t.monitor_mode == "auto" else t.monitor_mode
    es = t.early_stopping
    if es is None:
        return Monitors(name, mode, None, "min")
    stop = es.monitor or name
    if stop == "val_loss" and data.val is None:
        stop = "train_loss"  # as always: early_stopping.monitor's old default, val_loss, means the train loss here
    _check_recorded("train.early_stopping.monitor", stop, data)
    return Monitors(name, mode, stop, mode if stop == name else metrics.mode_for(stop))


def check_monitor(cfg: Config, data: DataBundle) -> None:
    """Refuse a monitor the run would never record, before any run directory exists (train, resume --new-run)."""
    monitors(cfg, data)


def _check_recorded(key: str, name: str, data: DataBundle) -> None:
    recorded = recorded_columns(data)
    if name in recorded:
        return
    hint = ""
    if name.startswith("val_") and data.val is None:
        hint = "; val_* columns need a validation split (set train.val_fraction, e.g. 0.1)"
    raise ConfigError(f"{key}: {name!r} is not a column this run records; it records {', '.join(recorded)}{hint}")
