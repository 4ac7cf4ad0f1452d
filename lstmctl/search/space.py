"""The search space: a config's `search:` section and `--param KEY=SPACE`, over dotted config keys.

    search:
      train.lr: {low: 1.0e-4, high: 1.0e-1, log: true}     float, log-uniform
      train.weight_decay: {low: 0.0, high: 0.01}           float, uniform
      train.batch_size: {low: 16, high: 128, step: 16}     int, in steps of 16
      model.hidden_size: {low: 8, high: 64, log: true}     int, log-uniform
      model.name: {choices: [lstm, gru]}                   categorical (a bare list means the same)

The kind follows the numbers: int when low, high (and step) are all integers, float otherwise;
`type: int` or `type: float` says it outright. Numbers written like 1e-4, which YAML reads as text,
are read as numbers. A sampled value reaches the config as `--set KEY=VALUE` does, so each trial's
run.json lists the values it trained with among its overrides.

Nothing here imports Optuna: `suggest` is handed the trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from lstmctl.errors import UserError

FORM = "a space is {low: L, high: H} (with step: S or log: true) or {choices: [A, B, ...]}"
KEYS = {"low", "high", "step", "log", "choices", "type"}
MAX_GRID = 100_000


def yaml_value(value: Any) -> str:
    """The text `--set KEY=TEXT` parses back into `value` (1e-05 as 1.0e-05: YAML 1.1 reads 1e-05 as a string)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text[:-3].strip() if text.endswith("...") else text


def _number(key: str, name: str, value: Any) -> int | float:
    if isinstance(value, str):  # `1e-4`: YAML 1.1 leaves it text
        try:
            value = float(value) if any(c in value for c in ".eEn") else int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"search {key}: {name} must be a finite number, got {value!r}")
    return value


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


@dataclass(frozen=True)
class Space:
    key: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = field(default_factory=tuple)
    verbatim: bool = False  # choices are `--set` texts, used as written (sweep --grid)

    # ---------------------------------------------------------------- sampling
    def optuna_choices(self) -> list:
        """Choices Optuna can store (None, bool, int, float, str): a list or a mapping goes as its JSON text."""
        if all(_scalar(c) for c in self.choices):
            return list(self.choices)
        return [json.dumps(c, sort_keys=True) for c in self.choices]

    def suggest(self, trial) -> Any:
        """The value `trial` (an optuna.Trial) draws for this key, in the form Optuna stores."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.optuna_choices())
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def decode(self, stored: Any) -> Any:
        """The config value of a value as Optuna stores it."""
        if self.kind != "categorical" or self.verbatim or all(_scalar(c) for c in self.choices):
            return stored
        return json.loads(stored)

    def override(self, stored: Any) -> str:
        """`KEY=VALUE` for --set."""
        if self.verbatim:
            return f"{self.key}={stored}"
        return f"{self.key}={yaml_value(self.decode(stored))}"

    def first(self) -> Any:
        """A value to check the key with before any trial: the first choice, or low."""
        return self.choices[0] if self.kind == "categorical" else self.low

    def grid(self) -> list:
        """The points of this axis for the grid sampler, in the form Optuna stores."""
        if self.kind == "categorical":
            return self.optuna_choices()
        if self.step is None and self.kind == "float":
            raise UserError(f"--sampler grid: {self.key} is a continuous range; give it a step or choices")
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        if self.log or n > MAX_GRID:
            raise UserError(f"--sampler grid: {self.key} needs choices or a step without log (at most {MAX_GRID} points)")
        return [self.low + i * step for i in range(n)] if self.kind == "int" else [round(self.low + i * step, 12) for i in range(n)]

    def describe(self) -> dict[str, Any]:
        """The space as it would be written in `search:`."""
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


def parse_space(key: str, spec: Any) -> Space:
    """One space from its YAML value, or a UserError naming the key and the problem."""
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"search: {key!r} is not a dotted config key such as train.lr")
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise UserError(f"search {key}: {FORM}; got {spec!r}")
    unknown = sorted(set(map(str, spec)) - KEYS)
    if unknown:
        raise UserError(f"search {key}: unknown key {unknown[0]!r}; {FORM}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) - {"choices"}:
            raise UserError(f"search {key}: choices do not combine with {', '.join(sorted(set(spec) - {'choices'}))}")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"search {key}: choices must be a non-empty list, got {choices!r}")
        return Space(key, "categorical", choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise UserError(f"search {key}: {FORM}")
    low, high = _number(key, "low", spec["low"]), _number(key, "high", spec["high"])
    step = _number(key, "step", spec["step"]) if spec.get("step") is not None else None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"search {key}: log must be true or false, got {log!r}")
    kind = spec.get("type") or ("int" if all(isinstance(v, int) for v in (low, high, step) if v is not None) else "float")
    if kind not in ("int", "float"):
        raise UserError(f"search {key}: type must be int or float, got {kind!r}")
    if kind == "int" and any(float(v) != int(v) for v in (low, high, step) if v is not None):
        raise UserError(f"search {key}: an int space needs whole numbers for low, high and step")
    if not low < high:
        raise UserError(f"search {key}: low ({low}) must be below high ({high})")
    if step is not None and step <= 0:
        raise UserError(f"search {key}: step must be positive, got {step}")
    if log and (step is not None or low <= 0):
        raise UserError(f"search {key}: log needs low > 0 and no step")
    if kind == "int":
        low, high, step = int(low), int(high), (int(step) if step is not None else None)
    else:
        low, high, step = float(low), float(high), (float(step) if step is not None else None)
    return Space(key, kind, low, high, step, log)


def parse_param(text: str) -> Space:
    """`--param 'train.lr={low: 1e-4, high: 1e-1, log: true}'` (the value parsed as YAML, as --set does)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise UserError(f"bad --param {text!r}: expected KEY=SPACE, e.g. --param 'train.lr={{low: 1e-4, high: 1e-1, log: true}}'")
    try:
        spec = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise UserError(f"bad --param {text!r}: the space is not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return parse_space(key.strip(), spec)


def spaces_of(section: Any, params: list[str] | None, source: str = "the config") -> dict[str, Space]:
    """The config's `search:` spaces with each --param added or replacing its key, in that order."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise UserError(f"{source}: search must map dotted keys to spaces, e.g. train.lr: {{low: 1.0e-4, high: 0.1, log: true}}")
    spaces = {str(k): parse_space(str(k), v) for k, v in section.items()}
    for text in params or []:
        space = parse_param(text)
        spaces[space.key] = space
    return spaces


def grid_spaces(axes: list[tuple[str, list[str]]]) -> dict[str, Space]:
    """sweep --grid: each axis a categorical space of the texts as written (`--set` parses each)."""
    return {key: Space(key, "categorical", choices=tuple(values), verbatim=True) for key, values in axes}


def grid_size(spaces: dict[str, Space]) -> int:
    return math.prod(len(s.grid()) for s in spaces.values())
