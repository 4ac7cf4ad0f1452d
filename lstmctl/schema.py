"""The config's types: the strict base every section derives from, and the top-level sections.

A leaf module: it imports nothing from lstmctl, so datasets and models can declare their parameter
schemas with `Strict` without importing the config loader (which imports them to register).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOP_KEYS = ("base", "name", "seed", "device", "plugins", "plugin_dir", "data", "model", "train", "logging", "search")
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Strict(BaseModel):
    """Unknown keys are errors; every section of the config derives from this."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EarlyStopping(Strict):
    """Stop when the monitored column has not improved by `min_delta` for `patience` epochs."""

    patience: int = Field(
        10, ge=1, le=1_000_000, description="epochs without improvement before stopping (epochs that record the monitor)"
    )
    min_delta: float = Field(0.0, ge=0, description="smallest change in the better direction that counts as an improvement")
    monitor: str | None = Field(
        None,
        description="metrics.csv column to watch; null: train.monitor. Its mode follows the name (as train.monitor_mode: "
        "auto); val_loss falls back to train_loss without a validation split",
    )


class Scheduler(Strict):
    """Learning-rate schedule, stepped once per epoch (onecycle: once per batch)."""

    name: Literal["none", "step", "cosine", "plateau", "onecycle"] = Field("none", description="which schedule")
    step_size: int = Field(30, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step: decay factor")
    min_lr: float = Field(0.0, ge=0, description="cosine: final learning rate; plateau: lower bound")
    factor: float = Field(0.5, gt=0, lt=1, description="plateau: decay factor")
    patience: int = Field(5, ge=0, description="plateau: epochs without improvement before decaying")
    max_lr: float | None = Field(None, gt=0, description="onecycle: peak learning rate (default train.lr)")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps spent warming up")


class TrainConfig(Strict):
    """How to train."""

    epochs: int = Field(100, ge=1, le=100_000_000, description="number of passes over the training split")
    batch_size: int | None = Field(
        None, ge=1, le=100_000_000, description="sequences per step; null = the whole training split"
    )
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="optimizer")
    lr: float = Field(0.01, gt=0, le=100, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd only")
    weight_decay: float = Field(0.0, ge=0, le=100, description="L2 penalty (decoupled for adamw)")
    loss: Literal["auto", "mse", "mae", "cross_entropy", "quantile"] = Field(
        "auto", description="auto: mse for regression, cross_entropy for classification; quantile: the pinball loss "
        "of train.quantiles (regression; prediction intervals)"
    )
    quantiles: list[float] | None = Field(
        None, max_length=99, description="with loss: quantile, the quantile levels the model predicts, each in (0, 1), "
        "0.5 among them (the median is the point forecast); null = [0.1, 0.5, 0.9]"
    )
    stop_at_loss: float | None = Field(None, gt=0, description="stop once the training loss falls below this")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    val_fraction: float = Field(
        0.0, ge=0, lt=1, description="validation share carved from training data, for datasets without a split"
    )
    shuffle: bool = Field(True, description="shuffle training sequences each epoch (seeded)")
    stateful: bool = Field(
        False, description="carry (h, c) from batch to batch in order, detached after each step (TBPTT)"
    )
    scheduler: Scheduler = Field(default_factory=Scheduler, description="learning-rate schedule (below)")
    early_stopping: EarlyStopping | None = Field(None, description="stop when the monitored column stalls (below)")
    monitor: str | None = Field(
        None,
        description="metrics.csv column that picks best.pt and drives early stopping and the plateau schedule, e.g. "
        "val_accuracy; null: val_loss with a validation split, else train_loss",
    )
    monitor_mode: Literal["auto", "min", "max"] = Field(
        "auto", description="whether lower or higher is better; auto: max for accuracy, f1 and r2 columns, else min"
    )
    val_every: int = Field(
        1, ge=1, le=100_000_000, description="validate every N epochs (and always at the last); other rows leave val_* empty"
    )
    checkpoint_every_s: float = Field(
        30.0, ge=0, description="write last.pt/best.pt at most this often (always at the end); 0 = every epoch"
    )
    log_every_s: float = Field(5.0, gt=0, description="when not on a terminal: seconds between log lines")
    threads: int | Literal["auto"] = Field("auto", description="CPU threads for torch; auto picks by model size")
    compile: bool = Field(False, description="torch.compile the model (pays off only on long runs)")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="bf16/fp16 autocast on CUDA only")

    @field_validator("threads")
    @classmethod
    def _threads_positive(cls, v):
        if isinstance(v, int) and not 1 <= v <= 4096:
            raise ValueError("must be 'auto' or between 1 and 4096")
        return v

    @field_validator("quantiles")
    @classmethod
    def _quantile_levels(cls, v):
        """Levels in (0, 1), each once, 0.5 among them; returned sorted (the model's outputs come in that order)."""
        if v is None:
            return v
        if not v:
            raise ValueError("is empty; give levels such as [0.1, 0.5, 0.9]")
        wrong = [q for q in v if not 0 < q < 1]
        if wrong:
            raise ValueError(f"{wrong[0]:g} is outside (0, 1): a quantile level is a probability strictly between 0 and 1")
        repeated = sorted({q for q in v if v.count(q) > 1})
        if repeated:
            raise ValueError(f"repeats {repeated[0]:g}; give each level once")
        if 0.5 not in v:
            raise ValueError("needs 0.5: the median is the point forecast that mae, rmse and mase score; e.g. [0.1, 0.5, 0.9]")
        return sorted(v)

    @model_validator(mode="after")
    def _quantiles_with_quantile_loss(self):
        if self.quantiles is not None and self.loss != "quantile":
            raise ValueError(f"train.quantiles is read only with train.loss: quantile (got loss: {self.loss}); "
                             "set train.loss: quantile or drop train.quantiles")
        if self.loss == "quantile" and self.quantiles is None:
            self.quantiles = [0.1, 0.5, 0.9]
        return self


class LoggingConfig(Strict):
    tensorboard: bool = Field(False, description="write TensorBoard event files into the run directory")


class Config(Strict):
    """A whole experiment."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="run name, part of the run id")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds data, initial weights, shuffling and dropout")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d{1,3})?)$", description="auto|cpu|cuda|cuda:N|mps")
    plugins: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="modules to import before data and model are looked up, e.g. [my_datasets]: their "
        "imports register datasets and models; a module beside the config file is found. Importing runs its code",
    )
    plugin_dir: str | None = Field(
        None,
        description="folder searched first for plugins (relative: to the config file's folder); "
        "default and in a run's saved config: the config file's folder, absolute",
    )
    data: dict[str, Any]
    model: dict[str, Any]
    train: TrainConfig = Field(default_factory=TrainConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="before")
    @classmethod
    def _without_search(cls, data: Any) -> Any:
        """`search:` is lstmctl tune's (lstmctl/search/space.py reads it from the file): a run's config is
        one point of the space, so the section is dropped here and `train` ignores it."""
        if isinstance(data, dict) and "search" in data:
            return {k: v for k, v in data.items() if k != "search"}
        return data

    @field_validator("plugins")
    @classmethod
    def _module_names(cls, v: list[str]):
        for name in v:
            if name.endswith(".py") and MODULE_NAME.match(name[:-3]):
                raise ValueError(f"{name!r} is a file name; write the module name, {name[:-3]!r}")
            if not MODULE_NAME.match(name):
                raise ValueError(f"{name!r} is not a module name (letters, digits, _ and dots, e.g. my_datasets)")
        return v

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        # left out when unused, so a config without plugins saves exactly as it always has
        if not d["plugins"]:
            del d["plugins"]
        if d["plugin_dir"] is None:
            del d["plugin_dir"]
        return d
