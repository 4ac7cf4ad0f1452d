"""The Python API: `from lstmctl import load_run`.

    run = load_run("latest")
    run.config            # the resolved Config
    run.metrics           # list of dicts, one per epoch (metrics.csv)
    run.model             # nn.Module on CPU, eval mode, best checkpoint
    run.predict(x)        # numpy array of outputs (regression in the target's units, class probabilities)
"""

from __future__ import annotations

import importlib
import sys
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from lstmctl.errors import UserError
from lstmctl.runs import RunDir, find_run


class Run:
    def __init__(self, run: RunDir, checkpoint: str = "best"):
        self.dir = run
        self.checkpoint = checkpoint

    @property
    def id(self) -> str:
        return self.dir.id

    @property
    def path(self) -> Path:
        return self.dir.path

    @cached_property
    def config(self):
        return self.dir.load_config()

    @property
    def info(self) -> dict:
        return self.dir.info()

    @property
    def metrics(self) -> list[dict]:
        return self.dir.read_metrics()

    @cached_property
    def _loaded(self):
        from lstmctl.inference import open_run

        return open_run(self.dir, self.checkpoint)

    @property
    def model(self) -> torch.nn.Module:
        return self._loaded.model

    @property
    def bundle(self):
        return self._loaded.bundle

    def predict(self, x) -> np.ndarray:
        """Outputs for sequences shaped (N, T, features) or one sequence (T, features)."""
        from lstmctl.inference import predict

        b = self.bundle
        t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        if t.dim() == 2:
            t = t.unsqueeze(0)
        if t.dim() != 3 or t.shape[-1] != b.input_size:
            raise UserError(
                f"input must be shaped (sequences, steps, {b.input_size}) or (steps, {b.input_size}), got {tuple(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise UserError("input contains NaN or infinite values")
        scale = b.state.get("input_scale")
        if scale:  # the run's fitted input scaling (plain numbers in data_state.json)
            t = (t - torch.as_tensor(scale["offset"], dtype=t.dtype)) / torch.as_tensor(scale["scale"], dtype=t.dtype)
        out = predict(self.model, t, self.config.train.stateful)
        if b.task.classification:
            return torch.softmax(out, dim=-1).numpy()
        return b.inverse_target(out).numpy()

    def prediction_inputs(self, path: Path):
        """(x, labels) built from a data file the way the dataset built its training inputs, if it can."""
        from lstmctl.registry import DATASETS

        builder = DATASETS.get(self.config.data["name"]).builder
        module = sys.modules.get(builder.__module__) or importlib.import_module(builder.__module__)
        fn = getattr(module, "prediction_inputs", None)
        if fn is None:
            return None
        return fn(self.config.data_params(), self.bundle.state, Path(path))


def load_run(run: str = "latest", runs_dir: str | None = None, checkpoint: str = "best") -> Run:
    return Run(find_run(run, runs_dir), checkpoint)
