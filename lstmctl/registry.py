"""One Registry type for datasets and models.

Each entry carries its own parameter schema (a pydantic model), so config validation and
`lstmctl config schema` see every parameter of every component.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from lstmctl.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    params: type[BaseModel]
    doc: str


class Registry:
    def __init__(self, kind: str, loader: Callable[[], None]):
        self.kind = kind  # "dataset" or "model", used in messages
        self._entries: dict[str, Entry] = {}
        self._loader = loader  # imports the modules that register, on first use
        self._loaded = False

    def register(self, name: str, params: type[BaseModel]):
        def deco(fn):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(name, fn, params, (fn.__doc__ or "").strip())
            return fn

        return deco

    def _ensure(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._loader()

    def names(self) -> list[str]:
        self._ensure()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        self._ensure()
        if name not in self._entries:
            hint = difflib.get_close_matches(str(name), self._entries, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{also}; registered {self.kind}s: {', '.join(self.names())}"
            )
        return self._entries[name]

    def __iter__(self):
        self._ensure()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


def _load_datasets() -> None:
    import lstmctl.data  # noqa: F401  (registers on import)


def _load_models() -> None:
    import lstmctl.models  # noqa: F401


DATASETS = Registry("dataset", _load_datasets)
MODELS = Registry("model", _load_models)


def register_dataset(name: str, params: type[BaseModel]):
    return DATASETS.register(name, params)


def register_model(name: str, params: type[BaseModel]):
    return MODELS.register(name, params)
