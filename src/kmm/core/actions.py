"""What the trading core asks its driver to do, besides the planner's write requests.

The core appends these to its outbox in the order it decides them; the driver (the live
shell or the backtest) drains the outbox (:meth:`kmm.core.trading.TradingCore.take_actions`)
and performs each one. None of them carries a decision: the core has made it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kmm.core.planner import ExecAction

__all__ = [
    "Action",
    "GoFlat",
    "Log",
    "Presign",
    "Print",
    "ReadFills",
    "Resync",
    "Say",
]


@dataclass(frozen=True, slots=True)
class Say:
    """An operations line for the operator: the ops log and the terminal."""

    line: str


@dataclass(frozen=True, slots=True)
class Print:
    """A line for the terminal only (each fill as it is booked)."""

    line: str


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the ops log only, at ``level`` (``logging.INFO``, ...)."""

    level: int
    line: str

    @classmethod
    def warning(cls, line: str) -> Log:
        """A warning line."""
        return cls(logging.WARNING, line)

    @classmethod
    def info(cls, line: str) -> Log:
        """An info line."""
        return cls(logging.INFO, line)


@dataclass(frozen=True, slots=True)
class Resync:
    """Ask the venue for fresh snapshots of these subscriptions (a gap, a reactivation)."""

    sids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadFills:
    """Read the account's fills back from the venue (since the newest one known) and report
    them with :meth:`~kmm.core.trading.TradingCore.on_fills_read`, marked ``source``."""

    source: str


@dataclass(frozen=True, slots=True)
class Presign:
    """Prepare the signature of the amend path of this venue order (a quote move then signs
    nothing on the hot path)."""

    order_id: str


@dataclass(frozen=True, slots=True)
class GoFlat:
    """The kill switch is halting: cancel everything, confirm with the venue that none of
    ours rests, then report :meth:`~kmm.core.trading.TradingCore.confirm_flat`."""


Action = ExecAction | Say | Print | Log | Resync | ReadFills | Presign | GoFlat
"""Everything the core's outbox can hold."""
