"""The config: schema, YAML loading, `base:` inheritance, `--set` overrides, did-you-mean.

Flow: read YAML (safe loader) -> merge `base:` files -> apply `--set key=value` overrides ->
validate the top level and `train` with pydantic -> import installed entry points and the
config's `plugins:` -> validate `data` and `model` with the schema of the registered component
they name -> a `Config` whose `data`/`model` dicts have every default filled in. The resolved
config is what a run saves, and `load(dump(c)) == c`.

Importing this module registers the built-in datasets and models (the family imports below).
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from lstmctl.data import inline, mnist, sine, synthetic, tabular  # noqa: F401  (importing registers them)
from lstmctl.errors import ConfigError
from lstmctl.models import bilstm, gru, hand, lstm, rnn, stacked  # noqa: F401  (importing registers them)
from lstmctl.registry import DATASETS, MODELS, load_entry_points, load_plugins
from lstmctl.schema import TOP_KEYS, Config, EarlyStopping, LoggingConfig, Scheduler, Strict, TrainConfig  # noqa: F401  (re-exported)


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


def _top_level(raw: dict) -> Config:
    """Validate all but the insides of `data` and `model`, then import the plugins the config
    names (and installed entry points), so that the registry knows every name they add."""
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
    load_entry_points()
    load_plugins(cfg.plugins, cfg.plugin_dir)
    return cfg


def validate(raw: dict) -> Config:
    """Validate a raw mapping into a resolved Config, or raise ConfigError with one line."""
    cfg = _top_level(raw)
    data = _validate_component("data", cfg.data)
    model = _validate_component("model", cfg.model)
    return cfg.model_copy(update={"data": data, "model": model})


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, merge `base:`, apply overrides and validate a config file."""
    path = Path(path)
    raw = _resolve_base(read_yaml(path), path)
    # Plugins first: the registry must know a plugin's dataset before its file paths are anchored.
    _top_level(_anchor_plugin_dir(apply_overrides(raw, overrides), path.parent))
    raw = _anchor_paths(raw, path.parent)  # data paths written in the file: relative to its folder
    raw = apply_overrides(raw, overrides)
    raw = _anchor_paths(raw, Path.cwd())  # paths given with --set: relative to the current directory
    return validate(_anchor_plugin_dir(raw, path.parent))


def _anchor_plugin_dir(raw: dict, folder: Path) -> dict:
    """Where plugins are looked for first: `plugin_dir` relative to the config file's folder, by
    default that folder itself, made absolute so that a run's saved config (in the run directory)
    finds the same modules whatever directory eval or resume runs from."""
    if not raw.get("plugins"):
        return raw
    where = raw.get("plugin_dir")
    if where is not None and (not isinstance(where, str) or not where or Path(where).is_absolute()):
        return raw  # absolute already, or wrong: validate() reports it
    return {**raw, "plugin_dir": os.path.normpath(folder.resolve() / Path(where or ".").expanduser())}


def _anchor_paths(raw: dict, folder: Path) -> dict:
    """Make relative file paths in `data` absolute, for dataset parameters marked `config_relative`.

    The saved config of a run then points at the same file whatever directory eval runs from.
    """
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return raw
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
    """A JSON Schema of the whole config: data/model are one-of the registered components
    (built-in and installed as entry points; a config's own plugins are not known here)."""
    load_entry_points()
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
