"""`lstmctl train`: a new run from a config, in this process or as one of torchrun's DDP processes.

    lstmctl train CONFIG            -> train()  -> start_training(): open_session, create_run, record, fit
    lstmctl train CONFIG --nproc N  -> launch(): torchrun starts N x `python -m lstmctl train CONFIG`,
                                       each of which joins the process group in start_training()

Everything that can be wrong with a config, its data or the device fails before a run directory exists.
"""

from __future__ import annotations

from pathlib import Path

from lstmctl import config as config_mod
from lstmctl.commands.output import training_done
from lstmctl.config import Config
from lstmctl.models.layers import describe_kernel
from lstmctl.runs import RunDir, check_run_id, create_run
from lstmctl.session import open_session, resolve_device
from lstmctl.train import distributed
from lstmctl.train.loop import Trainer
from lstmctl.train.recorder import record_new_run
from lstmctl.train.setup import check_monitor, check_stateful
from lstmctl.train.tracking import require_tensorboard


def train(path: Path, sets: list[str] | None = None, runs_dir=None, *, quiet: bool = False, json_out: bool = False,
          group: str | None = None) -> None:
    """One run (`group`: the member of a seed group that `--seeds --parallel` started in this process)."""
    if group is not None:
        check_run_id(group)
    cfg = config_mod.load(path, sets)
    run, summary = start_training(cfg, runs_dir, source=str(path), overrides=sets, quiet=quiet or json_out, group=group)
    training_done(run, summary, json_out=json_out)


def launch(nproc: int, path: Path, sets: list[str] | None = None, runs_dir=None, *,
           quiet: bool = False, json_out: bool = False, debug: bool = False) -> int:
    """`--nproc N`: run torchrun's launcher on this node; returns its exit code."""
    return distributed.launch(nproc, path, sets, runs_dir, quiet, json_out, debug)


def start_training(cfg: Config, runs_dir=None, *, source: str | None = None, overrides=None, dist=None,
                   quiet: bool = False, group: str | None = None) -> tuple[RunDir, dict]:
    """Open the session, create the run directory, train. Returns (run, summary).

    Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set) this process joins the group and trains with DDP.
    `group`: the id of the seed group (commands/seeds.py) this run belongs to, written into run.json.
    """
    own = distributed.from_env(cfg) if dist is None else None  # under torchrun: join the process group
    try:
        return _start_training(cfg, runs_dir, source=source, overrides=overrides, dist=dist or own, quiet=quiet, group=group)
    finally:
        if own is not None:
            own.close()


def _start_training(cfg: Config, runs_dir, *, source, overrides, dist, quiet: bool, group=None) -> tuple[RunDir, dict]:
    device = dist.device if dist is not None else resolve_device(cfg.device)
    if cfg.logging.tensorboard:
        require_tensorboard()  # fail before a run directory exists
    session = open_session(cfg, device=device)  # data errors surface before a run directory exists
    check_monitor(cfg, session.data)  # a monitor the run never records: exit 2, before a run directory exists
    check_stateful(cfg, len(session.data.train))
    describe_kernel(session.model, session.device)  # a wrong LSTMCTL_KERNEL fails here, before a run directory exists
    run = dist.create_run(cfg.name, runs_dir) if dist is not None else create_run(cfg.name, runs_dir)
    if dist is None or dist.rank == 0:  # only rank 0 writes the run directory
        record_new_run(run, session, source=source, overrides=overrides, world_size=dist.world_size if dist is not None else 1,
                       **({"group": group} if group else {}))
    trainer = Trainer(session, run, quiet=quiet, dist=dist)
    summary = trainer.fit()
    if dist is not None:
        dist.finish(trainer.model)
    return run, summary
