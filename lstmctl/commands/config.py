"""`lstmctl config show | validate | schema`: configs without training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lstmctl import config as config_mod


def show(path: Path, sets: list[str] | None = None) -> None:
    """The resolved config, every default filled in, as YAML."""
    sys.stdout.write(config_mod.dump(config_mod.load(path, sets)))


def validate(path: Path, sets: list[str] | None = None) -> None:
    cfg = config_mod.load(path, sets)
    print(f"ok: {path} is valid (dataset {cfg.data['name']}, model {cfg.model['name']}, {cfg.train.epochs} epochs)")


def schema() -> None:
    print(json.dumps(config_mod.json_schema(), indent=2))
