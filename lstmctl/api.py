"""The Python API: `from lstmctl import load_run`.

    run = load_run("latest")
    run.config            # the resolved Config
    run.metrics           # list of dicts, one per epoch (metrics.csv)
    run.model             # nn.Module on CPU, eval mode, best checkpoint
    run.predict(x)        # numpy array of outputs (regression in the target's units, class probabilities)
    run.inspect(x)        # every gate and state: {(layer, direction, gate): (time, units) array}
    group_runs("GROUP")   # the runs of a group of seeds, as a list of Run

A Run reopens its session (lstmctl.session.open_run) on first use of .model, .data or .predict.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from lstmctl.config import Config
from lstmctl.data.base import DataBundle
from lstmctl.data.facts import SeriesFacts
from lstmctl.errors import UserError
from lstmctl.evaluation import predict, quantile_levels
from lstmctl.inspection import gate_arrays
from lstmctl.metrics import quantile_outputs
from lstmctl.registry import DATASETS
from lstmctl.groups import Group, members_or_error, resolve, single_run
from lstmctl.runs import RunDir
from lstmctl.session import OpenedRun, open_run


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
    def config(self) -> Config:
        return self.dir.load_config()

    @property
    def info(self) -> dict:
        return self.dir.info()

    @property
    def metrics(self) -> list[dict]:
        return self.dir.read_metrics()

    @cached_property
    def opened(self) -> OpenedRun:
        """The run's session rebuilt on the CPU with the checkpoint's weights."""
        return open_run(self.dir, self.checkpoint)

    @property
    def model(self) -> torch.nn.Module:
        return self.opened.model

    @property
    def data(self) -> DataBundle:
        return self.opened.data

    bundle = data  # the name before the session builder; kept for scripts that use it

    def predict(self, x) -> np.ndarray:
        """Outputs for sequences shaped (N, T, features) or one sequence (T, features)."""
        b = self.data
        t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        if t.dim() == 2:
            t = t.unsqueeze(0)
        if t.dim() != 3 or t.shape[-1] != b.input_size:
            raise UserError(
                f"input must be shaped (sequences, steps, {b.input_size}) or (steps, {b.input_size}), got {tuple(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise UserError("input contains NaN or infinite values")
        if isinstance(b.facts, SeriesFacts) and (b.facts.window_norm != "none" or b.facts.transform != "none" or b.facts.members):
            # each window's own norm, its series' scaler or the last actual value are needed to undo them:
            # a CSV carries those
            raise UserError(
                f"run {self.id} normalises each window, transforms its target or scales each series on its own "
                "(data.window_norm/target_transform/series_column); predict from a CSV: lstmctl predict RUN --input file.csv"
            )
        t = b.scale_inputs(t)  # raw values, scaled as the run's fitted scaler did in training
        return self.outputs(predict(self.model, t, self.config.train.stateful))

    def outputs(self, out: torch.Tensor, to_units=None) -> np.ndarray:
        """Raw model outputs as a user reads them: class probabilities, or values in the target's own units
        (through `to_units`, a dataset's own inverse from prediction_inputs, else the saved scaler). A
        quantile run's (..., O*Q) outputs come back sorted per value (levels in increasing order), each
        level mapped to the target's units."""
        if self.data.task.classification:
            return torch.softmax(out, dim=-1).numpy()
        if to_units is None:
            units = lambda o: self.data.inverse_target(o).numpy()  # noqa: E731
        else:  # a dataset's inverse takes and returns numpy arrays
            units = lambda o: np.asarray(to_units(o.numpy()))  # noqa: E731
        levels = quantile_levels(self.data)
        if not levels:
            return units(out)
        q = quantile_outputs(out, len(levels))  # (..., O, Q), in order
        values = np.stack([units(q[..., k].contiguous()) for k in range(len(levels))], axis=-1)
        return values.reshape(*values.shape[:-2], -1)

    def inspect(self, x) -> dict[tuple[int, str, str], np.ndarray]:
        """Every gate and state of the model for inputs x, keyed (layer, direction, gate), e.g.
        (0, "forward", "forget"): (time, units) arrays for one sequence (steps, features),
        (sequences, time, units) for a batch; raw inputs, scaled as the run's training inputs were."""
        return gate_arrays(self.model, self.data, x)

    def prediction_inputs(self, path: Path):
        """(x, labels) built from a data file the way the dataset built its training inputs; None if it cannot."""
        entry = DATASETS.get(self.config.data["name"])
        if entry.prediction_inputs is None:
            return None
        return entry.prediction_inputs(entry.parse(self.config.data), self.data.state, Path(path))


def load_run(run: str = "latest", runs_dir: str | None = None, checkpoint: str = "best") -> Run:
    """One run by id, unique prefix or "latest"; a group's id is refused (load each of its runs)."""
    return Run(single_run(run, runs_dir, "load_run"), checkpoint)


def group_runs(group: str, runs_dir: str | None = None, checkpoint: str = "best") -> list[Run]:
    """The runs of a group of seeds (`lstmctl train CONFIG --seeds N`), by seed."""
    found = resolve(group, runs_dir)
    if not isinstance(found, Group):
        raise UserError(f"{found.id} is a run, not a group; load it with load_run")
    return [Run(r, checkpoint) for r in members_or_error(found)]
