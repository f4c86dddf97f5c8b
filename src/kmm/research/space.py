"""A parameter search space: dotted config fields mapped to ranges or choices (``space.yaml``).

::

    strategy.gamma: {low: 0.1, high: 2.0, log: true}
    strategy.min_spread_cents: {low: 1, high: 6, step: 0.5}
    strategy.order_size_contracts: {low: 1, high: 10, step: 1}
    strategy.fair_value: {choices: [mid, microprice]}

Each field must exist in the configuration (``section.field``). A whole-number field
(``strategy.improve_ticks``) takes whole bounds; an exact-decimal field (cents, contracts,
dollars) needs a ``step``, so every value tried is exact (``low + k·step``); a real field may
be sampled on a log scale. :meth:`SearchSpace.suggest` asks an Optuna trial for one value of
each, and :func:`apply_params` puts them into a configuration, which validates them as the
config file would (a combination the config refuses fails its trial, never the sweep).

Pure apart from reading the file.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import optuna
import yaml

from kmm.app import strategy_params
from kmm.config import KmmConfig, with_fields
from kmm.errors import ConfigError

__all__ = ["Dimension", "SearchSpace", "apply_params", "load_space"]


@dataclass(frozen=True, slots=True)
class Dimension:
    """One field of the space.

    Attributes:
        name: The dotted field, e.g. ``strategy.gamma``.
        kind: ``real``, ``whole``, ``decimal`` (exact, stepped) or ``choice``.
        low: The smallest value (ranges).
        high: The largest value (ranges).
        step: The distance between values tried (None: continuous; required for decimals).
        log: Sample on a log scale (real and whole ranges).
        choices: The values (``choice``).
    """

    name: str
    kind: str
    low: Decimal | None = None
    high: Decimal | None = None
    step: Decimal | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """One value of this field from the trial (a ``Decimal`` for exact fields)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.kind == "whole":
            every = int(self.step) if self.step is not None else 1
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=every, log=self.log
            )
        step = None if self.step is None else float(self.step)
        value = trial.suggest_float(
            self.name, float(self.low), float(self.high), step=step, log=self.log
        )
        if self.kind == "decimal":
            assert self.step is not None
            return Decimal(repr(value)).quantize(self.step)
        return value

    def grid(self) -> list[Any]:
        """Every value of the field, for the grid sampler.

        Raises:
            ConfigError: a continuous range has no grid.
        """
        if self.kind == "choice":
            return list(self.choices)
        if self.step is None and self.kind != "whole":
            raise ConfigError([f"{self.name}: the grid sampler needs a step"])
        assert self.low is not None and self.high is not None
        step = self.step if self.step is not None else Decimal(1)
        values, value = [], self.low
        while value <= self.high:
            values.append(int(value) if self.kind == "whole" else float(value))
            value += step
        return values


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """The dimensions of a sweep, in the file's order."""

    dimensions: tuple[Dimension, ...]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per field from the trial, by dotted name."""
        return {d.name: d.suggest(trial) for d in self.dimensions}

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's search space."""
        return {d.name: d.grid() for d in self.dimensions}


def load_space(path: Path, base: KmmConfig) -> SearchSpace:
    """Reads and checks a space file against the configuration it will change.

    Raises:
        ConfigError: one line per problem, naming the field (``space.yaml: strategy.gamma:
            low must be < high``).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: space file not found"]) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot read it: {exc}"]) from None
    if not isinstance(data, Mapping) or not data:
        raise ConfigError([f"{path}: must map config fields to ranges, e.g. strategy.gamma: "
                           "{low: 0.1, high: 2.0}"])  # fmt: skip
    dimensions, problems = [], []
    for name, spec in data.items():
        try:
            dimensions.append(_dimension(str(name), spec, base))
        except ValueError as exc:
            problems.append(f"{path.name}: {name}: {exc}")
    if problems:
        raise ConfigError(problems)
    return SearchSpace(tuple(dimensions))


def _field_type(name: str, base: KmmConfig) -> type:
    section, _, field = name.partition(".")
    owner = KmmConfig.model_fields.get(section)
    if not field or owner is None or not hasattr(base, section):
        raise ValueError("not a config field (section.field, e.g. strategy.gamma)")
    model = type(getattr(base, section))
    info = model.model_fields.get(field)
    if info is None:
        raise ValueError(f"{section} has no field {field}")
    annotation = info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return str  # a choice of names: only choices can be tried
    return annotation if isinstance(annotation, type) else object


def _number(spec: Mapping[str, Any], key: str) -> Decimal:
    try:
        return Decimal(str(spec[key]))
    except (KeyError, InvalidOperation):
        raise ValueError(f"{key} must be a number") from None


def _dimension(name: str, spec: object, base: KmmConfig) -> Dimension:
    kind_of = _field_type(name, base)
    if not isinstance(spec, Mapping):
        raise ValueError("must be {low: .., high: ..} or {choices: [...]}")
    unknown = set(spec) - {"low", "high", "step", "log", "choices"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]} (low, high, step, log, choices)")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError("choices must be a non-empty list")
        return Dimension(name, "choice", choices=tuple(choices))
    if kind_of is bool or kind_of is str:
        raise ValueError("is not a number: use choices")
    return _range(name, spec, kind_of)


def _range(name: str, spec: Mapping[str, Any], kind_of: type) -> Dimension:
    low, high = _number(spec, "low"), _number(spec, "high")
    step = _number(spec, "step") if "step" in spec else None
    log = bool(spec.get("log", False))
    if not low < high:
        raise ValueError("low must be < high")
    if step is not None and (step <= 0 or log):
        raise ValueError("step must be > 0, and a log range takes no step")
    if log and low <= 0:
        raise ValueError("a log range needs low > 0")
    if kind_of is int:
        if any(v is not None and v != int(v) for v in (low, high, step)):
            raise ValueError("is a whole number: low, high and step must be whole")
        return Dimension(name, "whole", low, high, step, log)
    if kind_of is Decimal:
        if step is None:
            raise ValueError("is an exact decimal: give a step (e.g. step: 0.5)")
        return Dimension(name, "decimal", low, high, step)
    return Dimension(name, "real", low, high, step, log)


def apply_params(base: KmmConfig, params: Mapping[str, Any]) -> KmmConfig:
    """The configuration with a trial's values set, validated as a config file would be.

    Raises:
        ConfigError: naming the field the configuration refuses (a trial that fails).
    """
    config = with_fields(base, params)
    strategy_params(config)  # the quoter's own checks (a min spread above the max, ...)
    return config
