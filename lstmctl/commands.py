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
    """Build everything, create the run directory, train. Returns (run, summary).

    Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set) this process joins the group and trains with DDP.
    """
    from lstmctl.train import distributed

    own = distributed.from_env(cfg) if dist is None else None  # under torchrun: join the process group
    try:
        return _start_training(cfg, runs_dir, source=source, overrides=overrides, dist=dist or own, quiet=quiet)
    finally:
        if own is not None:
            own.close()


def _start_training(cfg, runs_dir, *, source, overrides, dist, quiet):
    from lstmctl.experiment import build_bundle, build_model, resolve_device
    from lstmctl.train.loop import Trainer, check_stateful, seed_everything

    device = dist.device if dist is not None else resolve_device(cfg.device)
    if cfg.logging.tensorboard:
        from lstmctl.train.tracking import require_tensorboard

        require_tensorboard()  # fail before a run directory exists
    seed_everything(cfg.seed)
    bundle = build_bundle(cfg)  # data errors surface before a run directory exists
    model = build_model(cfg, bundle)
    check_stateful(cfg, len(bundle.train))
    is_main = dist is None or dist.rank == 0
    from lstmctl.models import kernel

    kernel.describe(model, device)  # a wrong LSTMCTL_KERNEL fails here, before a run directory exists
    run = dist.create_run(cfg.name, runs_dir) if dist is not None else create_run(cfg.name, runs_dir)
    if is_main:
        record_new_run(run, cfg, bundle, model, device, source=source, overrides=overrides,
                       world_size=dist.world_size if dist is not None else 1)
    trainer = Trainer(cfg, run, bundle, model, device, quiet=quiet, dist=dist)
    summary = trainer.fit()
    if dist is not None:
        dist.finish(trainer.model)
    return run, summary


def record_new_run(run: RunDir, cfg, bundle, model, device, *, source, overrides, world_size: int = 1, **extra) -> None:
    """Write what a run starts with: the resolved config, the fitted data state and run.json."""
    import torch

    from lstmctl import config as config_mod
    from lstmctl.experiment import save_data_state
    from lstmctl.models.base import count_parameters

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
            "world_size": world_size,
            "seed": cfg.seed,
            "params": count_parameters(model),
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


def predict_file(run: RunDir, input_path: Path, output: Path | None) -> tuple[str, int]:
    """Run a trained model on new data; returns (csv text, number of predictions)."""
    import csv
    import io

    import numpy as np
    import torch

    from lstmctl.api import Run
    from lstmctl.errors import UserError
    from lstmctl.inference import predict

    r = Run(run)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise UserError(f"input file not found: {input_path}")
    labels = None
    if input_path.suffix.lower() == ".csv":
        prepared = r.prediction_inputs(input_path)
        if prepared is None:
            raise UserError(
                f"run {run.id} was trained on {r.config.data['name']!r}, which takes no CSV input; "
                "give a .npy array of sequences shaped (N, steps, features)"
            )
        x, labels = prepared
        out = predict(r.model, x, r.config.train.stateful)
        b = r.bundle
        values = torch.softmax(out, -1).numpy() if b.task.classification else b.inverse_target(out).numpy()
    elif input_path.suffix.lower() == ".npy":
        try:
            arr = np.load(input_path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"cannot read {input_path} as a numpy array: {e}") from e
        values = r.predict(arr)
    else:
        raise UserError(f"--input must be a .csv (tabular runs) or a .npy array, got {input_path.name}")
    task = r.bundle.task
    buf = io.StringIO()
    w = csv.writer(buf)
    n = values.shape[0]
    if task.classification:
        cols = [f"prob_{i}" for i in range(values.shape[-1])]
        if task.per_step:
            w.writerow(["sequence", "step", "predicted_class", *cols])
            for i in range(n):
                for t in range(values.shape[1]):
                    w.writerow([i, t, int(values[i, t].argmax()), *map(float, values[i, t])])
        else:
            w.writerow(["sequence" if labels is None else "label", "predicted_class", *cols])
            for i in range(n):
                w.writerow([i if labels is None else labels[i], int(values[i].argmax()), *map(float, values[i])])
    else:
        names = r.bundle.meta.get("target_names") or [f"prediction_{j}" for j in range(values.shape[-1])]
        if task.per_step:
            w.writerow(["sequence", "step", *names])
            for i in range(n):
                for t in range(values.shape[1]):
                    w.writerow([i, t, *map(float, values[i, t])])
        else:
            w.writerow(["sequence" if labels is None else "label", *names])
            for i in range(n):
                w.writerow([i if labels is None else labels[i], *map(float, values[i])])
    text = buf.getvalue()
    if output is not None:
        write_text_atomic(Path(output), text)
    return text, n
