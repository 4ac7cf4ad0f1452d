"""One Registry type for datasets and models, and the loading of plugins that add to them.

Each entry carries its own parameter schema (a pydantic model), so config validation and
`lstmctl config schema` see every parameter of every component.

This module imports no dataset or model: the built-in families register themselves when
lstmctl.config imports them, and user code registers itself when it is imported as a plugin:
  - an installed package's entry point in the group `lstmctl.datasets` or `lstmctl.models`, whose
    value is a module to import (load_entry_points, once per process);
  - a module named under the config's `plugins:` key, imported with the config's folder first on
    sys.path (load_plugins).
Importing a plugin runs its code; only what the user installs or names is imported.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from lstmctl.errors import ConfigError

ENTRY_POINT_GROUPS = ("lstmctl.datasets", "lstmctl.models")


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    params: type[BaseModel]
    doc: str
    # datasets only: (params, saved data state, path of a new data file) -> (inputs (N, T, F), labels) or
    # (inputs, labels, to_units): how `lstmctl predict` builds inputs from a file the way the dataset
    # built its training inputs; to_units (outputs ndarray -> values in the target's own units) when the
    # dataset's inverse needs more than the saved scaler (per-window norms, differencing)
    prediction_inputs: Callable[..., Any] | None = None

    def parse(self, section: dict) -> BaseModel:
        """The component's typed parameters from its config section (the `name` key left out)."""
        return self.params.model_validate({k: v for k, v in section.items() if k != "name"})


class NameTaken(ConfigError):
    """A second, different component registered under a name that exists."""


def _origin(fn: Callable[..., Any]) -> tuple[str, str]:
    return getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", repr(fn))


class Registry:
    def __init__(self, kind: str):
        self.kind = kind  # "dataset" or "model", used in messages
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, params: type[BaseModel], prediction_inputs: Callable[..., Any] | None = None):
        def deco(fn):
            old = self._entries.get(name)
            # The same function registering again is one module imported twice (reloaded, or run
            # once as a plugin and once under another importer): the newer definition wins quietly.
            if old is not None and _origin(old.builder) != _origin(fn):
                raise NameTaken(
                    f"{self.kind} {name!r} is already registered by {old.builder.__module__}; "
                    f"register yours under another name"
                )
            self._entries[name] = Entry(name, fn, params, (fn.__doc__ or "").strip(), prediction_inputs)
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            hint = difflib.get_close_matches(str(name), self._entries, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{also}; registered {self.kind}s: {', '.join(self.names())}"
            )
        return self._entries[name]

    def __iter__(self):
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


DATASETS = Registry("dataset")
MODELS = Registry("model")


def register_dataset(name: str, params: type[BaseModel], prediction_inputs: Callable[..., Any] | None = None):
    return DATASETS.register(name, params, prediction_inputs)


def register_model(name: str, params: type[BaseModel]):
    return MODELS.register(name, params)


# ---------------------------------------------------------------- plugins


def _where(exc: BaseException) -> str:
    """' (file.py:12)': where an exception raised while importing a plugin came from.

    The deepest frame in the user's own code: not the import machinery, the standard library,
    installed packages or lstmctl; failing that, the deepest frame that is a file at all.
    """
    if isinstance(exc, SyntaxError):  # its traceback is the importer's; the place is on the error
        return f" ({Path(exc.filename or '?').name}:{exc.lineno})" if exc.lineno else ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    libraries = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, Path(__file__).parent)}
    own = [f for f in frames if not any(Path(f.filename).resolve().is_relative_to(lib) for lib in libraries)]
    frame = (own or frames or [None])[-1]
    return f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def import_plugin(
    module: str,
    folder: str | Path | None = None,
    *,
    what: str | None = None,
    missing_fix: str = "check the name under plugins:, or install the package that provides it",
    broken_fix: str = "fix the module, or remove it from plugins:",
) -> None:
    """Import `module` (its import registers components), or raise one ConfigError line.

    `folder` goes first on sys.path for the import only, so a module beside the config is found.
    `what` names the plugin in messages; the fixes say what to do when it is missing or broken.
    """
    what = what or f"plugin {module!r}"
    added = False
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
        added = True
    try:
        importlib.invalidate_caches()  # a module written after the folder was last listed
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            where = f"no {module.replace('.', '/')}.py in {folder}, and no" if folder else "no"
            raise ConfigError(
                f"{what} not found: {where} installed module of that name; {missing_fix}"
            ) from None
        raise ConfigError(f"{what} failed to import: {_one_line(e)}{_where(e)}; install {e.name} or fix the import") from None
    except NameTaken as e:
        raise ConfigError(f"{what}: {e}") from None  # its message says the fix
    except Exception as e:  # noqa: BLE001 - anything a user's module raises becomes one line
        raise ConfigError(f"{what} failed to import: {_one_line(e)}{_where(e)}; {broken_fix}") from None
    finally:
        if added:
            try:
                sys.path.remove(str(folder))
            except ValueError:  # the plugin removed it itself
                pass


def load_plugins(modules: Iterable[str], folder: str | Path | None = None) -> None:
    """Import the modules a config names under `plugins:`; each is imported once per process."""
    for module in modules:
        import_plugin(module, folder)


_entry_points_loaded = False


def load_entry_points() -> None:
    """Import every module installed as an entry point in ENTRY_POINT_GROUPS, once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for group in ENTRY_POINT_GROUPS:
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "its package"
            import_plugin(
                ep.module,
                what=f"entry point {ep.name!r} (group {group}, module {ep.module!r}, installed by {dist})",
                missing_fix=f"reinstall {dist}, or uninstall it",
                broken_fix=f"fix or upgrade {dist}, or uninstall it",
            )
    _entry_points_loaded = True  # only after all loaded: a failure is reported again, not forgotten
