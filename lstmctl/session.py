"""The session builder: the one path from a validated Config to the objects that train or evaluate.

    session = open_session(cfg)                                   # a new run: seed -> data -> model
    session = open_session(cfg, data_state=saved, device="cpu")   # a run reopened (eval, plot, resume)

Every command that starts or reopens a run goes through `open_session`, so the order of
construction (and with it every random draw) is the same for `train`, `resume`, `eval`, `plot`,
`predict`, `sweep` and `load_run`. Also here: device choice, seeding, loss, the data state file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lstmctl import metrics
from lstmctl.config import Config
from lstmctl.data.base import IGNORE_INDEX, DataBundle, Task
from lstmctl.errors import ConfigError, UserError
from lstmctl.registry import DATASETS, MODELS
from lstmctl import checkpoint as ckpt
from lstmctl.runs import RunDir, write_json
from lstmctl.models.base import build_with_stem


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(spec: str) -> torch.device:
    """auto picks cuda, then mps, then cpu; asking for an absent device is a UserError."""
    have = available_devices()
    if spec == "auto":
        for pick in ("cuda:0", "mps"):
            if pick in have:
                return torch.device(pick)
        return torch.device("cpu")
    want = "cuda:0" if spec == "cuda" else spec
    if want not in have:
        why = "CUDA is not available" if want.startswith("cuda") and not torch.cuda.is_available() else "not found"
        raise UserError(f"device {spec!r} is not available here ({why}); available: {', '.join(have)}. Use device: auto or cpu")
    return torch.device(want)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Session:
    """What a run trains or evaluates: its config, dataset and model, and the device they run on."""

    cfg: Config
    data: DataBundle
    model: nn.Module
    device: torch.device


def open_session(cfg: Config, *, data_state: dict | None = None, device: str | torch.device | None = None) -> Session:
    """Seed, build the dataset (reusing a run's fitted `data_state` when reopening), build the model.

    `device`: None resolves the config's `device` (an absent one is a UserError); reopening for
    eval/plot/predict passes "cpu". Data errors surface here, before any run directory exists.
    """
    device = resolve_device(cfg.device) if device is None else torch.device(device)
    seed_everything(cfg.seed)
    data = build_dataset(cfg, data_state)
    if cfg.train.loss == "quantile":
        loss_name(cfg, data.task)  # a classification dataset is refused here, before a run directory exists
        data.state = {**data.state, "quantiles": list(cfg.train.quantiles)}  # evaluation.quantile_levels reads them
    model = build_model(cfg, data)
    return Session(cfg, data, model, device)


def build_dataset(cfg: Config, state: dict | None = None) -> DataBundle:
    """Build the dataset; `state` (a run's data_state.json) makes fitted transforms (scalers) reuse the saved numbers."""
    entry = DATASETS.get(cfg.data["name"])
    return entry.builder(entry.parse(cfg.data), seed=cfg.seed, val_fraction=cfg.train.val_fraction, state=state or {})


def build_model(cfg: Config, data: DataBundle) -> nn.Module:
    entry = MODELS.get(cfg.model["name"])
    try:
        # train.loss: quantile -> every output value has Q outputs, one per level: (..., O*Q), see metrics.quantile_outputs
        size = data.output_size * (len(cfg.train.quantiles) if cfg.train.loss == "quantile" else 1)
        return build_with_stem(entry.builder, entry.parse(cfg.model), data.input_size, size, data.task)
    except ValueError as e:  # a parameter combination the component rejects
        raise ConfigError(f"model {cfg.model['name']!r}: {e}") from e


def loss_name(cfg: Config, task: Task) -> str:
    """The loss make_criterion builds; a quantile loss carries its levels: "quantile:0.1,0.5,0.9"."""
    name = cfg.train.loss
    if name == "auto":
        return "cross_entropy" if task.classification else "mse"
    if task.classification != (name == "cross_entropy"):
        raise ConfigError(
            f"train.loss={name} does not fit a {task.value} dataset; use "
            f"{'cross_entropy' if task.classification else 'mse, mae or quantile'} (or auto)"
        )
    if name == "quantile":
        return "quantile:" + ",".join(repr(float(q)) for q in cfg.train.quantiles)
    return name


def make_criterion(name: str, task: Task):
    if name.startswith("quantile:"):  # outputs (..., O*Q) against targets (..., O): the pinball loss, levels in order
        levels = [float(q) for q in name.partition(":")[2].split(",")]
        return lambda out, y: metrics.pinball(metrics.quantile_outputs(out, len(levels)), y, levels)
    if name == "cross_entropy":
        ce = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        if task.per_step:
            return lambda out, y: ce(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        return ce
    return nn.MSELoss() if name == "mse" else nn.L1Loss()


def save_data_state(data: DataBundle, path) -> None:
    write_json(path, data.state)


def load_data_state(path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


@dataclass
class OpenedRun:
    """A run reopened from its directory: the session rebuilt as it trained, with a checkpoint's weights."""

    run: RunDir
    session: Session
    checkpoint: str  # "best" or "last"
    epoch: int  # the epoch the checkpoint was written at

    @property
    def cfg(self) -> Config:
        return self.session.cfg

    @property
    def data(self) -> DataBundle:
        return self.session.data

    @property
    def model(self) -> nn.Module:
        return self.session.model


def open_run(run: RunDir, which: str = "best") -> OpenedRun:
    """Rebuild a run's session from its saved config and data state (on the CPU) and load best.pt or last.pt."""
    if which not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, got {which!r}")
    cfg = run.load_config()
    path = run.checkpoint(which)
    if not path.exists():
        raise UserError(f"run {run.id} has no {which}.pt checkpoint yet; train it further or use lstmctl resume {run.id}")
    state = ckpt.load(path)
    session = open_session(cfg, data_state=load_data_state(run.data_state), device="cpu")  # transform as training did
    try:
        session.model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {path} does not fit the model in {run.config_path}: {str(e).splitlines()[0]}") from e
    session.model.eval()
    return OpenedRun(run, session, which, int(state.get("epoch", 0)))
