"""What the commands do. cli.py parses arguments and maps errors to exit codes; this module works."""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from lstmctl import __version__
from lstmctl.runs import RunDir, create_run, find_run, utcnow, write_json, write_text_atomic


def start_training(cfg, runs_dir=None, *, source: str | None = None, overrides=None, dist=None, quiet=False):
    """Build everything, create the run directory, train. Returns (run, summary)."""
    import torch

    from lstmctl import config as config_mod
    from lstmctl.experiment import build_bundle, build_model, resolve_device, save_data_state
    from lstmctl.models.base import count_parameters
    from lstmctl.train.loop import Trainer, seed_everything

    device = dist.device if dist is not None else resolve_device(cfg.device)
    seed_everything(cfg.seed)
    bundle = build_bundle(cfg)  # data errors surface before a run directory exists
    model = build_model(cfg, bundle)
    is_main = dist is None or dist.rank == 0
    run = dist.create_run(cfg.name, runs_dir) if dist is not None else create_run(cfg.name, runs_dir)
    if is_main:
        write_text_atomic(run.config_path, config_mod.dump(cfg))
        save_data_state(bundle, run.data_state)
        write_json(
            run.run_json,
            {
                "id": run.id,
                "name": cfg.name,
                "status": "running",
                "created": utcnow(),
                "dataset": cfg.data["name"],
                "model": cfg.model["name"],
                "task": bundle.task.value,
                "device": str(device),
                "world_size": dist.world_size if dist is not None else 1,
                "seed": cfg.seed,
                "params": count_parameters(model),
                "epochs": cfg.train.epochs,
                "epochs_done": 0,
                "source": source,
                "overrides": list(overrides or []),
                "torch_version": torch.__version__,
                "lstmctl_version": __version__,
                "python": platform.python_version(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "argv": sys.argv,
            },
        )
    trainer = Trainer(cfg, run, bundle, model, device, quiet=quiet, dist=dist)
    return run, trainer.fit()


def evaluate(run: RunDir, checkpoint: str = "best", split: str = "test") -> dict[str, Any]:
    from lstmctl.inference import open_run, score

    loaded = open_run(run, checkpoint)
    metrics = score(loaded, split)
    result = {
        "run": run.id,
        "split": split,
        "checkpoint": checkpoint,
        "epoch": loaded.epoch,
        "task": loaded.bundle.task.value,
        "metrics": metrics,
    }
    write_json(run.eval_json, result)
    return result


def plot(run: RunDir, fmt: str = "png", checkpoint: str = "best") -> list[Path]:
    from lstmctl.plots import plot_run

    return plot_run(run, fmt, checkpoint)


def resolve(ref: str, runs_dir=None) -> RunDir:
    return find_run(ref, runs_dir)
