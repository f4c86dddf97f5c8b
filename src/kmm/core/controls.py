"""An operator's per-market settings: ``markets.overrides``, a SIGHUP reload, the control API.

Theory of operation
-------------------
Every runtime change of a market's settings is a :class:`~kmm.config.MarketOverride`, whether
it comes from the config file (at start and on a reload) or from the control API (enable,
disable, reduce-only, parameters). :class:`MarketControls` holds the overrides in force and
answers what they mean for one market: its quoting parameters (:func:`override_params`), its
own position cap, whether it is disabled or reduce-only. The trading core applies them; this
module only computes, so a backtest and a live run read them alike.

A new set of overrides is validated whole before anything changes (:meth:`MarketControls.check`:
the parameters each market would get must be valid ones), and the change is described field by
field (:func:`override_diff`) for the operations log. A reload makes the file the truth again:
changes made through the API since are replaced by the file's.

The module is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from kmm.config import MarketOverride, validate_override
from kmm.errors import ConfigError
from kmm.strategy.quoter import StrategyParams
from kmm.types import ONE_CENT, QTY_SCALE, Qty

__all__ = ["DEFAULT_OVERRIDE", "MarketControls", "override_diff", "override_params"]

DEFAULT_OVERRIDE: Final = MarketOverride()
"""A market without an override: enabled, not reduce-only, the run's parameters."""

_PARAM_FIELDS: Final = (
    "gamma",
    "eta",
    "order_size_contracts",
    "max_position_contracts",
    "edge_cents",
    "min_spread_cents",
    "max_spread_cents",
    "improve_ticks",
)


def _qty(contracts: Decimal) -> Qty:
    return int(contracts * QTY_SCALE)


def _price(cents: Decimal) -> int:
    return int(cents * ONE_CENT)


def override_params(base: StrategyParams, override: MarketOverride) -> StrategyParams:
    """The quoting parameters of a market with this override, from the run's.

    A larger order size raises the largest order with it; the position cap never rises above
    the run's.

    Raises:
        ConfigError: naming every parameter the override would put out of range.
    """
    changes: dict[str, Any] = {}
    if override.gamma is not None:
        changes["gamma"] = override.gamma
    if override.eta is not None:
        changes["eta"] = override.eta
    if override.order_size_contracts is not None:
        size = _qty(override.order_size_contracts)
        changes["base_qty"] = size
        changes["max_order_qty"] = max(base.max_order_qty, size)
    if override.max_position_contracts is not None:
        changes["max_position"] = min(base.max_position, _qty(override.max_position_contracts))
    if override.edge_cents is not None:
        changes["edge"] = _price(override.edge_cents)
    if override.min_spread_cents is not None:
        changes["min_spread"] = _price(override.min_spread_cents)
    if override.max_spread_cents is not None:
        changes["max_spread"] = _price(override.max_spread_cents)
    if override.improve_ticks is not None:
        changes["improve_ticks"] = override.improve_ticks
    return replace(base, **changes) if changes else base


def _has_params(override: MarketOverride) -> bool:
    return any(getattr(override, name) is not None for name in _PARAM_FIELDS)


def _show(value: object) -> str:
    if value is None:
        return "the run's"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def override_diff(
    old: Mapping[str, MarketOverride], new: Mapping[str, MarketOverride]
) -> list[str]:
    """One line per market whose override changed, naming each field's old and new value,
    e.g. ``KXA-26: gamma the run's -> 0.8, enabled true -> false``."""
    lines = []
    for ticker in sorted(set(old) | set(new)):
        before = old.get(ticker, DEFAULT_OVERRIDE)
        after = new.get(ticker, DEFAULT_OVERRIDE)
        if before == after:
            continue
        changes = [
            f"{name} {_show(getattr(before, name))} -> {_show(getattr(after, name))}"
            for name in type(after).model_fields
            if getattr(before, name) != getattr(after, name)
        ]
        lines.append(f"{ticker}: {', '.join(changes)}")
    return lines


class MarketControls:
    """The overrides in force, and what they mean for each market.

    Args:
        base: The run's quoting parameters (those of a market without an override).
        overrides: The overrides at start (``markets.overrides``).

    Raises:
        ConfigError: if an override gives a market invalid parameters.
    """

    def __init__(self, base: StrategyParams, overrides: Mapping[str, MarketOverride]) -> None:
        self.base = base
        self.check(overrides)
        self.overrides: dict[str, MarketOverride] = dict(overrides)

    def check(self, overrides: Mapping[str, MarketOverride]) -> None:
        """Refuses a set of overrides that would give a market invalid parameters.

        Raises:
            ConfigError: one line per problem, ``markets.overrides.TICKER: ...``.
        """
        problems = []
        for ticker, override in overrides.items():
            try:
                override_params(self.base, override)
            except ConfigError as exc:
                problems += [f"markets.overrides.{ticker}: {p}" for p in exc.problems]
        if problems:
            raise ConfigError(problems)

    def replace_all(self, overrides: Mapping[str, MarketOverride]) -> tuple[list[str], set[str]]:
        """Puts a new set of overrides in force (validated first).

        Returns:
            The diff's lines and the tickers whose override changed.

        Raises:
            ConfigError: if the set is refused; nothing changed then.
        """
        self.check(overrides)
        new = {t: o for t, o in overrides.items() if o != DEFAULT_OVERRIDE}
        lines = override_diff(self.overrides, new)
        changed = {
            t
            for t in set(self.overrides) | set(new)
            if self.overrides.get(t, DEFAULT_OVERRIDE) != new.get(t, DEFAULT_OVERRIDE)
        }
        self.overrides = new
        return lines, changed

    def update(self, ticker: str, changes: Mapping[str, Any]) -> tuple[list[str], set[str]]:
        """Changes some fields of one market's override (the control API).

        Args:
            ticker: The market.
            changes: Field names and values as the config file spells them; a value of
                ``None`` puts a parameter back to the run's.

        Raises:
            ConfigError: naming the field that is unknown or out of range.
        """
        current = self.get(ticker).model_dump()
        current.update(changes)
        return self.replace_all({**self.overrides, ticker: validate_override(ticker, current)})

    def get(self, ticker: str) -> MarketOverride:
        """The market's override (the default one when it has none)."""
        return self.overrides.get(ticker, DEFAULT_OVERRIDE)

    def params(self, ticker: str) -> StrategyParams | None:
        """The market's own quoting parameters, or None when it quotes with the run's."""
        override = self.overrides.get(ticker)
        if override is None or not _has_params(override):
            return None
        return override_params(self.base, override)

    def cap(self, ticker: str) -> Qty | None:
        """The market's own position cap from its override, or None."""
        override = self.overrides.get(ticker)
        if override is None or override.max_position_contracts is None:
            return None
        return _qty(override.max_position_contracts)

    def disabled(self) -> set[str]:
        """The markets an operator disabled."""
        return {t for t, o in self.overrides.items() if not o.enabled}

    def reduce_only(self) -> set[str]:
        """The markets an operator set reduce-only."""
        return {t for t, o in self.overrides.items() if o.reduce_only}

    def tickers(self) -> Iterable[str]:
        """The markets with an override."""
        return self.overrides.keys()
