"""The kill switch: stop on loss, drawdown, unknown outcomes, a silent feed, or by hand.

Theory of operation
-------------------
::

    RUNNING ──trip──▶ HALTING ──confirm_flat──▶ HALTED ──resume──▶ RUNNING

* ``RUNNING``: quoting is allowed.
* ``HALTING``: something tripped the switch. The shell stops quoting, cancels every order
  and reads the open orders back from the exchange until none of ours rest; then it calls
  :meth:`KillSwitch.confirm_flat`.
* ``HALTED``: flat and stopped. It stays so, whatever happens, until an operator calls
  :meth:`KillSwitch.resume`.

Triggers, each checked only while ``RUNNING`` (the first reason wins and is kept):

* **daily loss**: today's P&L (realized + unrealized, net of fees) ``<= -max_daily_loss``;
* **drawdown**: today's peak P&L minus today's P&L ``>= max_drawdown``. The peak is the
  day's high-water mark of the day's P&L, which starts the day at 0, so a day that only
  loses measures its drawdown from 0;
* **unknown outcomes**: more than ``max_unknown_orders`` orders whose outcome became unknown
  (timeout, 5xx, disconnect) within ``unknown_window_ns``;
* **stale feed**: no market-data message at all for ``stale_feed_ns``. A single quiet or
  stale market only pulls that market's quotes (:mod:`kmm.risk.guards`); a feed silent for
  several times ``stale_book_s`` means the connection is not coming back by itself, so the
  switch also reads the open orders back and waits for an operator;
* **by hand**: :meth:`KillSwitch.trip` (a signal, the kill file, a reconciliation drift).

The day is the UTC day of ``now_ns`` (Unix wall-clock time). The first P&L reading of a day
is its baseline: today's P&L is ``total_pnl - baseline`` and the peak restarts at 0. After a
restart, :meth:`KillSwitch.restore` puts back today's P&L and peak from the ledger so that a
restart does not forget a loss or reset the high-water mark.

Every method returns the state transition it caused as a :class:`KillEvent`, or ``None``.
Every event, including those that change no state (a day rollover, a restore), is also
recorded; :meth:`KillSwitch.take_events` hands them over for the log.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from kmm.risk._text import seconds, usd
from kmm.types import Money

if TYPE_CHECKING:
    from kmm.config import RiskConfig

__all__ = [
    "DEFAULT_STALE_FEED_FACTOR",
    "DEFAULT_UNKNOWN_WINDOW_S",
    "NS_PER_DAY",
    "EventKind",
    "HaltState",
    "KillEvent",
    "KillSwitch",
    "Trigger",
]

NS_PER_S: Final = 1_000_000_000
NS_PER_DAY: Final = 86_400 * NS_PER_S
DEFAULT_UNKNOWN_WINDOW_S: Final = 60.0
"""Window over which unknown order outcomes are counted."""
DEFAULT_STALE_FEED_FACTOR: Final = 4
"""A feed silent for this many times ``stale_book_s`` trips the switch."""


class HaltState(StrEnum):
    """Where the kill switch is (see the module docstring)."""

    RUNNING = "running"
    HALTING = "halting"
    HALTED = "halted"


class Trigger(StrEnum):
    """What tripped the switch."""

    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    UNKNOWN_ORDERS = "unknown_orders"
    STALE_FEED = "stale_feed"
    DRIFT = "drift"
    MANUAL = "manual"


class EventKind(StrEnum):
    """What a :class:`KillEvent` records."""

    TRIP = "trip"
    FLAT = "flat"
    RESUME = "resume"
    DAY_START = "day_start"
    RESTORE = "restore"


@dataclass(frozen=True, slots=True)
class KillEvent:
    """One thing the kill switch did, for the ops log.

    Attributes:
        ts_ns: When it happened.
        kind: What happened.
        state: The state after it.
        reason: A sentence naming the limit and the numbers.
        trigger: What tripped the switch (for ``trip``, ``flat`` and ``resume``).
    """

    ts_ns: int
    kind: EventKind
    state: HaltState
    reason: str
    trigger: Trigger | None = None

    def __str__(self) -> str:
        return f"kill switch {self.kind} ({self.state}): {self.reason}"


def _utc_date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat()


class KillSwitch:
    """The process-wide halt: trips on limits, stays halted until resumed.

    Args:
        max_daily_loss: Loss of today's P&L at which to trip (money units, positive).
        max_drawdown: Fall from today's peak P&L at which to trip (money units, positive).
        max_unknown_orders: Unknown order outcomes tolerated within ``unknown_window_ns``;
            one more trips the switch.
        unknown_window_ns: The window over which unknown outcomes are counted.
        stale_feed_ns: A feed silent this long trips the switch.

    Attributes:
        quoting_allowed: True only while ``RUNNING`` (a plain attribute, read on every quote;
            only the switch sets it).

    Raises:
        ValueError: if a limit is out of range, naming it.
    """

    __slots__ = (
        "_day",
        "_day_pnl",
        "_day_start",
        "_events",
        "_peak",
        "_reason",
        "_state",
        "_trigger",
        "_tripped_ns",
        "_unknown",
        "max_daily_loss",
        "max_drawdown",
        "max_unknown_orders",
        "quoting_allowed",
        "stale_feed_ns",
        "unknown_window_ns",
    )

    def __init__(
        self,
        *,
        max_daily_loss: Money,
        max_drawdown: Money,
        max_unknown_orders: int,
        unknown_window_ns: int = round(DEFAULT_UNKNOWN_WINDOW_S * NS_PER_S),
        stale_feed_ns: int = 120 * NS_PER_S,
    ) -> None:
        for name, value, least in (
            ("max_daily_loss", max_daily_loss, 1),
            ("max_drawdown", max_drawdown, 1),
            ("max_unknown_orders", max_unknown_orders, 0),
            ("unknown_window_ns", unknown_window_ns, 1),
            ("stale_feed_ns", stale_feed_ns, 1),
        ):
            if value < least:
                raise ValueError(f"kill switch: {name} must be >= {least}, got {value}")
        self.max_daily_loss = max_daily_loss
        self.max_drawdown = max_drawdown
        self.max_unknown_orders = max_unknown_orders
        self.unknown_window_ns = unknown_window_ns
        self.stale_feed_ns = stale_feed_ns
        self._state = HaltState.RUNNING
        self.quoting_allowed = True
        self._trigger: Trigger | None = None
        self._reason: str | None = None
        self._tripped_ns: int | None = None
        self._day: int | None = None
        self._day_start: Money = 0
        self._day_pnl: Money = 0
        self._peak: Money = 0
        self._unknown: deque[int] = deque()
        self._events: list[KillEvent] = []

    @classmethod
    def from_config(
        cls,
        risk: RiskConfig,
        *,
        unknown_window_s: float = DEFAULT_UNKNOWN_WINDOW_S,
        stale_feed_s: float | None = None,
    ) -> KillSwitch:
        """A kill switch with the limits of the ``risk`` section.

        Args:
            risk: The risk configuration.
            unknown_window_s: The window for ``max_unknown_orders``, in seconds.
            stale_feed_s: How long a silent feed is tolerated, in seconds; ``None`` for
                :data:`DEFAULT_STALE_FEED_FACTOR` times ``risk.stale_book_s``.
        """
        stale_ns = (
            risk.stale_book_ns * DEFAULT_STALE_FEED_FACTOR
            if stale_feed_s is None
            else round(stale_feed_s * NS_PER_S)
        )
        return cls(
            max_daily_loss=risk.max_daily_loss,
            max_drawdown=risk.max_drawdown,
            max_unknown_orders=risk.max_unknown_orders,
            unknown_window_ns=round(unknown_window_s * NS_PER_S),
            stale_feed_ns=stale_ns,
        )

    # State

    @property
    def state(self) -> HaltState:
        """The current state."""
        return self._state

    @property
    def trigger(self) -> Trigger | None:
        """What tripped the switch, while it is halting or halted."""
        return self._trigger

    @property
    def reason(self) -> str | None:
        """Why the switch tripped, while it is halting or halted."""
        return self._reason

    @property
    def tripped_ns(self) -> int | None:
        """When the switch tripped, while it is halting or halted."""
        return self._tripped_ns

    @property
    def day_pnl(self) -> Money:
        """Today's P&L as of the last reading (money units)."""
        return self._day_pnl

    @property
    def day_peak(self) -> Money:
        """Today's high-water mark of the day's P&L (money units); the ledger keeps it.

        It starts each day at 0 (the day's P&L at its start), or at the day's P&L when an
        operator resumes with ``rebase_peak``.
        """
        return self._peak

    def take_events(self) -> list[KillEvent]:
        """Every event recorded since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # Inputs

    def on_pnl(self, total_pnl: Money, now_ns: int) -> KillEvent | None:
        """Takes a P&L reading and trips on the daily loss or drawdown limit.

        Args:
            total_pnl: Realized plus unrealized P&L net of fees, on any fixed baseline (the
                portfolio's total since start is fine): only its changes within a day count.
            now_ns: Unix wall-clock time of the reading, which fixes its UTC day.

        Returns:
            The trip, if this reading tripped the switch.
        """
        day = now_ns // NS_PER_DAY
        if day != self._day:
            self._start_day(day, total_pnl, now_ns)
        pnl = total_pnl - self._day_start
        self._day_pnl = pnl
        if pnl > self._peak:
            self._peak = pnl
        return self._check_pnl(now_ns)

    def restore(
        self, *, day_pnl: Money, day_peak: Money, total_pnl: Money, now_ns: int
    ) -> KillEvent | None:
        """Puts back today's P&L and peak after a restart (from the ledger).

        Args:
            day_pnl: Today's P&L so far, as the ledger recorded it.
            day_peak: Today's peak P&L so far, as the ledger recorded it.
            total_pnl: The reading of the P&L stream that :meth:`on_pnl` will continue from
                (0 for a fresh portfolio); ``day_pnl`` is anchored to it.
            now_ns: The current time; the values are taken to belong to its UTC day.

        Returns:
            The trip, if the restored values are already beyond a limit.

        Raises:
            ValueError: if ``day_peak`` is below ``day_pnl`` (no high-water mark can be).
        """
        if day_peak < day_pnl:
            raise ValueError(
                f"kill switch restore: day_peak {usd(day_peak)} is below day_pnl {usd(day_pnl)}"
            )
        self._day = now_ns // NS_PER_DAY
        self._day_start = total_pnl - day_pnl
        self._day_pnl = day_pnl
        self._peak = day_peak
        reason = f"restored today's P&L {usd(day_pnl)} and peak {usd(day_peak)} from the ledger"
        self._record(now_ns, EventKind.RESTORE, reason)
        return self._check_pnl(now_ns)

    def on_unknown_order(self, now_ns: int) -> KillEvent | None:
        """Counts one order whose outcome became unknown; trips when too many are recent."""
        window = self._unknown
        window.append(now_ns)
        cutoff = now_ns - self.unknown_window_ns
        while window[0] <= cutoff:
            window.popleft()
        if self._state is not HaltState.RUNNING or len(window) <= self.max_unknown_orders:
            return None
        reason = (
            f"{len(window)} order outcomes unknown within {seconds(self.unknown_window_ns)} "
            f"(max_unknown_orders {self.max_unknown_orders})"
        )
        return self._trip(Trigger.UNKNOWN_ORDERS, reason, now_ns)

    def check_feed(self, last_message_ns: int, now_ns: int) -> KillEvent | None:
        """Trips if no market-data message arrived for ``stale_feed_ns``.

        Args:
            last_message_ns: When the newest market-data message (or ping) arrived, over
                every connection.
            now_ns: The current time.
        """
        age = now_ns - last_message_ns
        if self._state is not HaltState.RUNNING or age < self.stale_feed_ns:
            return None
        reason = f"market data silent for {seconds(age)} (limit {seconds(self.stale_feed_ns)})"
        return self._trip(Trigger.STALE_FEED, reason, now_ns)

    def trip(self, reason: str, now_ns: int, trigger: Trigger = Trigger.MANUAL) -> KillEvent | None:
        """Trips the switch by hand (a signal, the kill file, a reconciliation drift).

        Returns:
            The trip, or ``None`` if the switch was already halting or halted (the first
            reason is kept).
        """
        if self._state is not HaltState.RUNNING:
            return None
        return self._trip(trigger, reason, now_ns)

    def confirm_flat(self, now_ns: int) -> KillEvent | None:
        """The shell verified that none of our orders rest: ``HALTING`` → ``HALTED``.

        Returns:
            The transition, or ``None`` if the switch was not halting.
        """
        if self._state is not HaltState.HALTING:
            return None
        self._state = HaltState.HALTED
        reason = f"no order of ours rests; halted on {self._trigger}: {self._reason}"
        return self._record(now_ns, EventKind.FLAT, reason, self._trigger)

    def resume(self, now_ns: int, *, rebase_peak: bool = False) -> KillEvent | None:
        """An operator resumes trading: ``HALTED`` → ``RUNNING``.

        The day's P&L and peak are kept, so a daily-loss or drawdown condition that still
        holds trips again at the next reading; ``rebase_peak`` measures drawdown from today's
        current P&L instead. The window of unknown outcomes is cleared.

        Returns:
            The transition, or ``None`` if the switch was not halted (a halting switch must
            be confirmed flat first).
        """
        if self._state is not HaltState.HALTED:
            return None
        trigger, reason = self._trigger, self._reason
        self._state = HaltState.RUNNING
        self.quoting_allowed = True
        self._trigger = self._reason = self._tripped_ns = None
        self._unknown.clear()
        text = f"resumed after {trigger}: {reason}"
        if rebase_peak:
            self._peak = self._day_pnl
            text += f"; drawdown now measured from {usd(self._peak)}"
        return self._record(now_ns, EventKind.RESUME, text, trigger)

    # Internals

    def _check_pnl(self, now_ns: int) -> KillEvent | None:
        if self._state is not HaltState.RUNNING:
            return None
        pnl = self._day_pnl
        if pnl <= -self.max_daily_loss:
            reason = (
                f"daily loss: today's P&L {usd(pnl)} <= -{usd(self.max_daily_loss)} "
                f"(max_daily_loss)"
            )
            return self._trip(Trigger.DAILY_LOSS, reason, now_ns)
        drop = self._peak - pnl
        if drop >= self.max_drawdown:
            reason = (
                f"drawdown: today's P&L {usd(pnl)} is {usd(drop)} below today's peak "
                f"{usd(self._peak)} (max_drawdown {usd(self.max_drawdown)})"
            )
            return self._trip(Trigger.DRAWDOWN, reason, now_ns)
        return None

    def _start_day(self, day: int, total_pnl: Money, now_ns: int) -> None:
        previous = self._day
        if previous is None:
            reason = f"UTC day {_utc_date(day)} starts at total P&L {usd(total_pnl)}"
        else:
            reason = (
                f"UTC day {_utc_date(day)} starts at total P&L {usd(total_pnl)}; "
                f"{_utc_date(previous)} ended at {usd(self._day_pnl)} "
                f"(peak {usd(self._peak)})"
            )
        self._day = day
        self._day_start = total_pnl
        self._day_pnl = 0
        self._peak = 0
        self._record(now_ns, EventKind.DAY_START, reason)

    def _trip(self, trigger: Trigger, reason: str, now_ns: int) -> KillEvent:
        self._state = HaltState.HALTING
        self.quoting_allowed = False
        self._trigger = trigger
        self._reason = reason
        self._tripped_ns = now_ns
        return self._record(now_ns, EventKind.TRIP, reason, trigger)

    def _record(
        self, now_ns: int, kind: EventKind, reason: str, trigger: Trigger | None = None
    ) -> KillEvent:
        event = KillEvent(now_ns, kind, self._state, reason, trigger)
        self._events.append(event)
        return event
