"""From a validated Config to the objects that train: device, dataset, model, loss."""

from __future__ import annotations

import json

import torch
from torch import nn

from lstmctl.config import Config
from lstmctl.data.base import IGNORE_INDEX, DataBundle, Task
from lstmctl.errors import ConfigError, UserError
from lstmctl.registry import DATASETS, MODELS


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


def build_bundle(cfg: Config, state: dict | None = None) -> DataBundle:
    """Build the dataset; `state` (a run's data_state.json) makes fitted transforms (scalers) reuse the saved numbers."""
    entry = DATASETS.get(cfg.data["name"])
    extra = {"state": state} if state else {}  # only builders with fitted state accept it
    return entry.builder(cfg.data_params(), seed=cfg.seed, val_fraction=cfg.train.val_fraction, **extra)


def build_model(cfg: Config, bundle: DataBundle) -> nn.Module:
    entry = MODELS.get(cfg.model["name"])
    try:
        return entry.builder(cfg.model_params(), bundle.input_size, bundle.output_size, bundle.task)
    except ValueError as e:  # a parameter combination the component rejects
        raise ConfigError(f"model {cfg.model['name']!r}: {e}") from e


def loss_name(cfg: Config, task: Task) -> str:
    name = cfg.train.loss
    if name == "auto":
        return "cross_entropy" if task.classification else "mse"
    if task.classification != (name == "cross_entropy"):
        raise ConfigError(
            f"train.loss={name} does not fit a {task.value} dataset; use "
            f"{'cross_entropy' if task.classification else 'mse or mae'} (or auto)"
        )
    return name


def make_criterion(name: str, task: Task):
    if name == "cross_entropy":
        ce = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        if task.per_step:
            return lambda out, y: ce(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        return ce
    return nn.MSELoss() if name == "mse" else nn.L1Loss()


def save_data_state(bundle: DataBundle, path) -> None:
    from lstmctl.runs import write_json

    write_json(path, bundle.state)


def load_data_state(path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
