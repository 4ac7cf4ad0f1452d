"""The config: schema, YAML loading, `base:` inheritance, `--set` overrides, did-you-mean.

Flow: read YAML (safe loader) -> merge `base:` files -> apply `--set key=value` overrides ->
validate the top level and `train` with pydantic -> validate `data` and `model` with the schema of
the registered component they name -> a `Config` whose `data`/`model` dicts have every default
filled in. The resolved config is what a run saves, and `load(dump(c)) == c`.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lstmctl.errors import ConfigError

TOP_KEYS = ("base", "name", "seed", "device", "data", "model", "train", "logging")


class Strict(BaseModel):
    """Unknown keys are errors; every section of the config derives from this."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EarlyStopping(Strict):
    """Stop when the monitored loss has not improved by `min_delta` for `patience` epochs."""

    patience: int = Field(10, ge=1, le=1_000_000, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest decrease that counts as an improvement")
    monitor: Literal["val_loss", "train_loss"] = Field(
        "val_loss", description="which loss to watch (val_loss falls back to train_loss without a validation split)"
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
    loss: Literal["auto", "mse", "mae", "cross_entropy"] = Field(
        "auto", description="auto: mse for regression, cross_entropy for classification"
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
    early_stopping: EarlyStopping | None = Field(None, description="stop when the loss stalls (below)")
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


class LoggingConfig(Strict):
    tensorboard: bool = Field(False, description="write TensorBoard event files into the run directory")


class Config(Strict):
    """A whole experiment."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="run name, part of the run id")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds data, initial weights, shuffling and dropout")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d{1,3})?)$", description="auto|cpu|cuda|cuda:N|mps")
    data: dict[str, Any]
    model: dict[str, Any]
    train: TrainConfig = Field(default_factory=TrainConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    def data_params(self):
        from lstmctl.registry import DATASETS

        return DATASETS.get(self.data["name"]).params.model_validate(_without_name(self.data))

    def model_params(self):
        from lstmctl.registry import MODELS

        return MODELS.get(self.model["name"]).params.model_validate(_without_name(self.model))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _without_name(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "name"}


# ---------------------------------------------------------------- reading YAML


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} file not found: {path} (check the path)")
    if not path.is_file():
        raise ConfigError(f"{what} path is not a file: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from e
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str = "<config>") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)  # safe loader: `!!python/object` and friends are rejected
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from e
    except (RecursionError, ValueError, OverflowError) as e:  # absurd nesting or numbers
        raise ConfigError(f"{source}: cannot parse YAML: {type(e).__name__}") from e
    _check_size(data, source)
    if data is None:
        raise ConfigError(f"{source} is empty; start from one of the files in configs/")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (name, data, model, train), got {type(data).__name__}")
    return data


MAX_NODES = 100_000


def _check_size(data: Any, source: str) -> None:
    """Refuse documents whose aliases expand to absurd sizes (a 'billion laughs'), before anyone walks them."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(f"{source} is too large: its values (aliases expanded) exceed {MAX_NODES:,}; a config is a few dozen keys")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _resolve_base(raw: dict, path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if "base" not in raw:
        return raw
    base = raw["base"]
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base must be a file name relative to {path.parent}, got {base!r}")
    base_path = (path.parent / base).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ConfigError(f"{path}: base files form a cycle through {base_path.name}")
    base_raw = _resolve_base(read_yaml(base_path, "base config"), base_path, seen + (path.resolve(),))
    rest = {k: v for k, v in raw.items() if k != "base"}
    return _merge(base_raw, rest)


# ---------------------------------------------------------------- overrides


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply `--set a.b.c=value` overrides; values are parsed as YAML."""
    raw = dict(raw)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or any(not p for p in parts):
            raise ConfigError(f"bad --set {item!r}: expected KEY=VALUE with a dotted key, e.g. --set train.lr=0.003")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
            _check_size(parsed, f"--set {key}")
        except yaml.YAMLError:
            parsed = value  # not YAML: take the literal text
        node = raw
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"bad --set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            else:
                nxt = dict(nxt)
            node[p] = nxt
            node = nxt
        node[parts[-1]] = parsed
    return raw


# ---------------------------------------------------------------- validation


def _unwrap(annotation) -> type | None:
    """The BaseModel class inside `X`, `X | None`, `Optional[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for a in typing.get_args(annotation):
            m = _unwrap(a)
            if m is not None:
                return m
    return None


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = _unwrap(field.annotation) if field else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _format_error(err: ValidationError, model: type[BaseModel], prefix: str, extra_keys=()) -> str:
    errors = err.errors()
    e = errors[0]
    loc = tuple(e["loc"])
    dotted = ".".join([prefix] * bool(prefix) + [str(p) for p in loc])
    if e["type"] == "extra_forbidden":
        known = _keys_at(model, loc[:-1]) + (list(extra_keys) if len(loc) == 1 else [])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        msg = f"unknown key {dotted!r}"
        msg += f" (did you mean {hint[0]!r}?)" if hint else (f"; valid keys here: {', '.join(known)}" if known else "")
    elif e["type"] == "missing":
        msg = f"missing key {dotted!r}"
    else:
        got = e.get("input")
        shown = repr(got)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = f"{dotted}: {e['msg']} (got {shown})"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})"
    return msg


def _validate_component(section: str, value: Any) -> dict:
    from lstmctl.registry import DATASETS, MODELS

    registry = DATASETS if section == "data" else MODELS
    if not isinstance(value, dict):
        raise ConfigError(f"{section} must be a mapping with at least a 'name' key, got {type(value).__name__}")
    if "name" not in value:
        raise ConfigError(f"missing key '{section}.name': pick one of {', '.join(registry.names())}")
    name = value["name"]
    if not isinstance(name, str):
        raise ConfigError(f"{section}.name must be a string, got {name!r}")
    entry = registry.get(name)
    try:
        params = entry.params.model_validate(_without_name(value))
    except ValidationError as e:
        raise ConfigError(f"config error: {_format_error(e, entry.params, section, extra_keys=('name',))}") from None
    return {"name": name, **params.model_dump(mode="json")}


def validate(raw: dict) -> Config:
    """Validate a raw mapping into a resolved Config, or raise ConfigError with one line."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping, got {type(raw).__name__}")
    raw = {k: v for k, v in raw.items() if k != "base"}
    for section in ("data", "model"):
        if section not in raw:
            raise ConfigError(f"missing section '{section}': every config names a {section} (see configs/sin2cos.yaml)")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"config keys must be strings, got {bad[0]!r}")
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"config error: {_format_error(e, Config, '')}") from None
    except RecursionError:
        raise ConfigError("config error: nested too deeply") from None
    data = _validate_component("data", cfg.data)
    model = _validate_component("model", cfg.model)
    return cfg.model_copy(update={"data": data, "model": model})


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, merge `base:`, apply overrides and validate a config file."""
    path = Path(path)
    raw = _resolve_base(read_yaml(path), path)
    raw = _anchor_paths(raw, path.parent)  # data paths written in the file: relative to its folder
    raw = apply_overrides(raw, overrides)
    raw = _anchor_paths(raw, Path.cwd())  # paths given with --set: relative to the current directory
    return validate(raw)


def _anchor_paths(raw: dict, folder: Path) -> dict:
    """Make relative file paths in `data` absolute, for dataset parameters marked `config_relative`.

    The saved config of a run then points at the same file whatever directory eval runs from.
    """
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return raw
    from lstmctl.registry import DATASETS

    try:
        params = DATASETS.get(data["name"]).params
    except ConfigError:
        return raw  # validate() reports the unknown name
    data = dict(data)
    for key, field in params.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        value = data.get(key)
        if extra.get("config_relative") and isinstance(value, str) and value and not value.startswith("~"):
            if not Path(value).is_absolute():
                data[key] = os.path.normpath(folder.resolve() / value)
    return {**raw, "data": data}


def loads(text: str, overrides: list[str] | None = None) -> Config:
    raw = parse_yaml(text)
    if "base" in raw:
        raise ConfigError("base: only works for config files, not text")
    return validate(apply_overrides(raw, overrides))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=False)


def json_schema() -> dict[str, Any]:
    """A JSON Schema of the whole config: data/model are one-of the registered components."""
    from lstmctl.registry import DATASETS, MODELS

    schema = Config.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for section, registry in (("data", DATASETS), ("model", MODELS)):
        options = []
        for entry in registry:
            sub = entry.params.model_json_schema()
            for k, v in sub.pop("$defs", {}).items():
                defs[k] = v
            sub.setdefault("properties", {})
            sub["properties"] = {"name": {"const": entry.name}, **sub["properties"]}
            sub["required"] = ["name"] + list(sub.get("required", []))
            sub["additionalProperties"] = False
            sub["title"] = f"{section}: {entry.name}"
            if entry.doc:
                sub["description"] = entry.doc.splitlines()[0]
            options.append(sub)
        schema["properties"][section] = {"oneOf": options, "description": f"a registered {registry.kind}"}
    return schema
