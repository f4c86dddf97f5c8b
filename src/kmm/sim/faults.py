"""Fault injection for the local exchange: pure state the REST server and the websocket hub consult.

Theory of operation
-------------------
A :class:`FaultPlan` holds *pending* faults and answers cheap questions about them. Faults
get into the plan two ways: a test (or the server) calls a mutator such as
:meth:`FaultPlan.drop_ws_messages` directly, or a **schedule** parsed from a spec string
(:func:`parse_spec`) activates them at fixed offsets from :attr:`FaultPlan.start_ns` when
:meth:`FaultPlan.apply_due` is called with the current time. The plan never reads the clock
and does no I/O: time is always passed in.

Faults that change the venue itself (a trading pause, a market deactivation) are applied to
an optional ``controls`` object with ``set_trading_active(active, now_ns)`` and
``set_market_active(ticker, active, now_ns)``; the :class:`~kmm.sim.engine.MatchingEngine`
is such an object. Those calls emit engine events, so the server must ``publish()`` after
``apply_due`` returned something. A timed pause ends inside a later ``apply_due`` call.

Everything else is consumed by the server and the hub through the query API below: counted
faults (dropped messages, failing writes, 429s) are used up one per positive answer.

Query API (who calls what)
--------------------------
The REST server:

* ``apply_due(now_ns) -> list[Fault]``: on every background tick **and** before handling
  each request (one integer comparison when nothing is due). If the list is not empty, call
  ``venue.publish()``.
* ``take_rate_limit() -> bool``: once per authenticated request, before the token buckets;
  ``True`` means answer 429 ``{"error": "too many requests"}`` (no Retry-After).
* ``take_write_fault() -> WriteFault | None``: once per order-write request (anything billed
  to the Write bucket), after authentication and rate limiting. With ``accepted=True`` run
  the write against the engine as usual (and publish), then answer with the fault; with
  ``accepted=False`` leave the engine alone. ``kind == "5xx"``: answer HTTP 500 with
  Kalshi's error body; ``kind == "timeout"``: send no answer (hold the request longer than
  the client's timeout, then drop the connection).
* ``trading_paused(now_ns)`` / ``pause_until_ns``: for ``GET /exchange/status`` (the engine's
  own ``trading_active`` is what order writes are checked against).

The websocket hub:

* ``should_drop(channel) -> bool``: once per update message about to be sent on a
  subscription of ``channel``, **after** its ``seq`` was assigned, so that a dropped message
  leaves a gap the client can see. Call it for updates only, not for snapshots or command
  responses. Each ``True`` uses up one drop (the next ``n`` messages across all connections).
* ``take_close_sockets() -> bool``: check it when fanning out events and on the ping timer;
  ``True`` (once per request) means close every open socket.
* ``stalled(now_ns) -> bool`` / ``stall_until_ns``: while stalled send nothing, pings
  included; hold messages and deliver them in order once the stall ends (a stalled TCP
  stream, not a gap).

Spec grammar
------------
A spec is a comma-separated list of ``OFFSET:ACTION`` tokens (spaces around tokens are
ignored); ``OFFSET`` is when the fault fires, counted from the plan's start::

    spec     := token ("," token)*
    token    := OFFSET ":" action
    OFFSET   := DURATION
    DURATION := NUMBER ("ms" | "s" | "m" | "h")          e.g. 500ms, 30s, 1.5s, 2m
    COUNT    := "x" INTEGER                              repeat count, default 1
    action   := "drop_ws" [COUNT] ["=" CHANNEL | "=any"] drop the next messages (default
                                                         channel orderbook_delta)
              | "close_ws"                               close every websocket
              | "stall=" DURATION                        send nothing for that long
              | "pause" ["=" DURATION]                   trading pause (no duration: until resume)
              | "resume"                                 end a trading pause
              | "deactivate=" TICKER                     market status inactive
              | "activate=" TICKER                       market active again
              | "write_" ("5xx" | "timeout") "_" ("accepted" | "rejected") [COUNT]
                                                         fail the next order writes
              | "429" [COUNT]                            answer the next requests with 429

Example: ``"30s:drop_ws,45s:close_ws,60s:stall=5s,90s:pause=10s,120s:deactivate=KXSIMA-26NOV23-T50,
20s:write_5xx_accepted,25s:write_timeout_rejectedx2,40s:429x5"``. A malformed token raises
:class:`FaultSpecError` naming the token.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol

from kmm.errors import ConfigError, KmmError
from kmm.kalshi.constants import PRIVATE_CHANNELS, PUBLIC_CHANNELS

__all__ = [
    "WRITE_FAULT_KINDS",
    "Activate",
    "CloseWs",
    "Deactivate",
    "DropWs",
    "FailWrites",
    "Fault",
    "FaultPlan",
    "FaultSpecError",
    "FaultStats",
    "Pause",
    "RateLimitBurst",
    "Resume",
    "ScheduledFault",
    "Stall",
    "TradingControls",
    "WriteFault",
    "parse_duration_ns",
    "parse_spec",
]

WRITE_FAULT_KINDS: Final = ("5xx", "timeout")
"""How a failing write is answered: HTTP 500, or no answer at all."""

_NS_PER_S: Final = 1_000_000_000
_UNIT_NS: Final[dict[str, int]] = {
    "ms": 1_000_000,
    "s": _NS_PER_S,
    "m": 60 * _NS_PER_S,
    "h": 3600 * _NS_PER_S,
}
_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_COUNT_RE: Final = re.compile(r"(.*?)(?:x(\d+))?")
_CHANNELS: Final = frozenset((*PUBLIC_CHANNELS, *PRIVATE_CHANNELS))
_DEFAULT_DROP_CHANNEL: Final = "orderbook_delta"
_NEVER: Final = 1 << 126


class FaultSpecError(ConfigError):
    """A fault spec token could not be parsed.

    Attributes:
        token: The offending token, as written.
        reason: What was wrong with it.
    """

    def __init__(self, token: str, reason: str) -> None:
        self.token = token
        self.reason = reason
        super().__init__([f"fault spec token {token!r}: {reason}"])


class TradingControls(Protocol):
    """What the plan needs to pause trading and deactivate markets (the engine has both)."""

    def set_trading_active(self, active: bool, now_ns: int) -> None:
        """Starts (``False``) or ends (``True``) an exchange-wide trading pause."""
        ...

    def set_market_active(self, ticker: str, active: bool, now_ns: int) -> None:
        """Deactivates (``False``) or reactivates (``True``) one market."""
        ...


@dataclass(frozen=True, slots=True)
class WriteFault:
    """How to answer one order write.

    Attributes:
        kind: ``"5xx"`` (HTTP 500) or ``"timeout"`` (no answer).
        accepted: Whether the engine applies the write despite the failed answer.
    """

    kind: str
    accepted: bool


@dataclass(slots=True)
class FaultStats:
    """How many faults were served so far (for tests and the status line)."""

    dropped_messages: int = 0
    socket_closes: int = 0
    write_faults: int = 0
    rate_limited: int = 0
    pauses: int = 0
    deactivations: int = 0


# Fault values: one frozen dataclass per action, each renders its own spec token and
# applies itself to a plan.


@dataclass(frozen=True, slots=True)
class DropWs:
    """Drop the next ``count`` websocket messages on ``channel`` (``None``: any channel)."""

    count: int = 1
    channel: str | None = _DEFAULT_DROP_CHANNEL

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        channel = "any" if self.channel is None else self.channel
        return f"drop_ws{_count_suffix(self.count)}={channel}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Queues the drops on ``plan``."""
        plan.drop_ws_messages(self.count, self.channel)


@dataclass(frozen=True, slots=True)
class CloseWs:
    """Close every websocket."""

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        return "close_ws"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Requests the close on ``plan``."""
        plan.close_sockets()


@dataclass(frozen=True, slots=True)
class Stall:
    """Send no websocket traffic for ``duration_ns``."""

    duration_ns: int

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        return f"stall={_format_duration(self.duration_ns)}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Stalls the feed of ``plan`` from ``now_ns``."""
        plan.stall_feed_ns(self.duration_ns, now_ns)


@dataclass(frozen=True, slots=True)
class Pause:
    """A trading pause for ``duration_ns`` (``None``: until a :class:`Resume`)."""

    duration_ns: int | None = None

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        if self.duration_ns is None:
            return "pause"
        return f"pause={_format_duration(self.duration_ns)}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Pauses trading through ``plan``."""
        plan.pause_trading_ns(self.duration_ns, now_ns)


@dataclass(frozen=True, slots=True)
class Resume:
    """End a trading pause."""

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        return "resume"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Resumes trading through ``plan``."""
        plan.resume_trading(now_ns)


@dataclass(frozen=True, slots=True)
class Deactivate:
    """Deactivate one market (status ``inactive``)."""

    ticker: str

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        return f"deactivate={self.ticker}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Deactivates the market through ``plan``."""
        plan.deactivate_market(self.ticker, now_ns)


@dataclass(frozen=True, slots=True)
class Activate:
    """Reactivate one market."""

    ticker: str

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        return f"activate={self.ticker}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Reactivates the market through ``plan``."""
        plan.activate_market(self.ticker, now_ns)


@dataclass(frozen=True, slots=True)
class FailWrites:
    """Fail the next ``count`` order writes with ``kind``, applied or not per ``accepted``."""

    kind: str
    accepted: bool
    count: int = 1

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        outcome = "accepted" if self.accepted else "rejected"
        return f"write_{self.kind}_{outcome}{_count_suffix(self.count)}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Queues the failing writes on ``plan``."""
        plan.fail_next_writes(self.count, self.kind, self.accepted)


@dataclass(frozen=True, slots=True)
class RateLimitBurst:
    """Answer the next ``count`` authenticated requests with 429."""

    count: int = 1

    @property
    def token(self) -> str:
        """The spec text of this fault."""
        return f"429{_count_suffix(self.count)}"

    def apply(self, plan: FaultPlan, now_ns: int) -> None:
        """Queues the 429s on ``plan``."""
        plan.rate_limit_burst(self.count)


Fault = (
    DropWs | CloseWs | Stall | Pause | Resume | Deactivate | Activate | FailWrites | RateLimitBurst
)


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A fault that fires ``offset_ns`` after the plan's start."""

    offset_ns: int
    fault: Fault

    @property
    def token(self) -> str:
        """The spec text of this scheduled fault (parses back to an equal value)."""
        return f"{_format_duration(self.offset_ns)}:{self.fault.token}"


@dataclass(slots=True)
class _Drop:
    remaining: int
    channel: str | None


class FaultPlan:
    """Pending faults, a schedule, and the queries the server and the websocket hub make.

    Args:
        schedule: Faults to fire at offsets from ``start_ns`` (see :func:`parse_spec`).
        start_ns: The time offsets count from (the server sets it when it starts).
        controls: Where pauses and deactivations are applied (the matching engine);
            ``None`` keeps them as plan state only.

    Attributes:
        start_ns: The time schedule offsets count from; may be reassigned before the run.
        stats: Counts of faults served.
        errors: Scheduled faults whose application the venue refused, with the error.
    """

    def __init__(
        self,
        schedule: Iterable[ScheduledFault] = (),
        *,
        start_ns: int = 0,
        controls: TradingControls | None = None,
    ) -> None:
        self.start_ns = start_ns
        self.stats = FaultStats()
        self.errors: list[tuple[Fault, KmmError]] = []
        self._controls = controls
        self._schedule: list[ScheduledFault] = []
        self._drops: deque[_Drop] = deque()
        self._writes: deque[WriteFault] = deque()
        self._rate_limits = 0
        self._close_requested = False
        self._stall_until_ns: int | None = None
        self._paused = False
        self._pause_until_ns: int | None = None
        self.schedule(schedule)

    @classmethod
    def from_spec(
        cls, spec: str, *, start_ns: int = 0, controls: TradingControls | None = None
    ) -> FaultPlan:
        """Builds a plan whose schedule is the parsed ``spec``.

        Raises:
            FaultSpecError: naming the first malformed token.
        """
        return cls(parse_spec(spec), start_ns=start_ns, controls=controls)

    @staticmethod
    def parse_spec(spec: str) -> list[ScheduledFault]:
        """The module-level :func:`parse_spec`, for callers holding only the class."""
        return parse_spec(spec)

    # Schedule

    def schedule(self, faults: Iterable[ScheduledFault]) -> None:
        """Adds faults to the schedule (stable: equal offsets fire in the order given)."""
        self._schedule.extend(faults)
        self._schedule.sort(key=_offset_of)

    @property
    def pending(self) -> tuple[ScheduledFault, ...]:
        """The scheduled faults that have not fired yet, in firing order."""
        return tuple(self._schedule)

    def due(self, now_ns: int) -> list[Fault]:
        """Removes and returns the scheduled faults due at ``now_ns``, without applying them."""
        offset = now_ns - self.start_ns
        count = 0
        for item in self._schedule:
            if item.offset_ns > offset:
                break
            count += 1
        if not count:
            return []
        fired, self._schedule = self._schedule[:count], self._schedule[count:]
        return [item.fault for item in fired]

    def apply_due(self, now_ns: int) -> list[Fault]:
        """Fires every due scheduled fault and ends an expired timed pause.

        A fault the venue refuses (e.g. an unknown ticker) is recorded in :attr:`errors`
        and skipped, so a bad schedule cannot stop the server.

        Returns:
            The faults fired, plus a :class:`Resume` if a timed pause ended; when this is
            not empty the engine may have emitted events to publish.
        """
        fired = self.due(now_ns) if self._schedule else []
        for fault in fired:
            try:
                fault.apply(self, now_ns)
            except KmmError as e:
                self.errors.append((fault, e))
        if self._pause_until_ns is not None and now_ns >= self._pause_until_ns:
            self.resume_trading(now_ns)
            fired.append(Resume())
        return fired

    # Mutators (tests, the schedule, or an operator)

    def drop_ws_messages(self, n: int = 1, channel: str | None = _DEFAULT_DROP_CHANNEL) -> None:
        """Drops the next ``n`` websocket update messages on ``channel`` (``None``: any)."""
        _check_count("n", n)
        if channel is not None and channel not in _CHANNELS:
            raise ValueError(f"channel: unknown websocket channel {channel!r}")
        self._drops.append(_Drop(n, channel))

    def close_sockets(self) -> None:
        """Requests that every websocket be closed at the hub's next check."""
        self._close_requested = True

    def stall_feed(self, seconds: float, now_ns: int) -> None:
        """Sends no websocket traffic (pings included) for ``seconds`` from ``now_ns``."""
        self.stall_feed_ns(_seconds_to_ns("seconds", seconds), now_ns)

    def stall_feed_ns(self, duration_ns: int, now_ns: int) -> None:
        """:meth:`stall_feed` with the duration in nanoseconds; stalls extend, never shorten."""
        until = now_ns + duration_ns
        if self._stall_until_ns is None or until > self._stall_until_ns:
            self._stall_until_ns = until

    def fail_next_writes(self, n: int, kind: str, accepted: bool) -> None:
        """Answers the next ``n`` order writes with ``kind`` (``"5xx"`` or ``"timeout"``).

        Args:
            n: How many writes fail.
            kind: ``"5xx"`` for HTTP 500, ``"timeout"`` for no answer.
            accepted: ``True`` if the engine still applies each write.
        """
        _check_count("n", n)
        if kind not in WRITE_FAULT_KINDS:
            raise ValueError(f"kind: must be one of {WRITE_FAULT_KINDS}, got {kind!r}")
        fault = WriteFault(kind, accepted)
        self._writes.extend(fault for _ in range(n))

    def rate_limit_burst(self, n: int) -> None:
        """Answers the next ``n`` authenticated requests with 429."""
        _check_count("n", n)
        self._rate_limits += n

    def pause_trading(self, seconds: float | None, now_ns: int) -> None:
        """Starts a trading pause for ``seconds`` (``None``: until :meth:`resume_trading`)."""
        duration = None if seconds is None else _seconds_to_ns("seconds", seconds)
        self.pause_trading_ns(duration, now_ns)

    def pause_trading_ns(self, duration_ns: int | None, now_ns: int) -> None:
        """:meth:`pause_trading` in nanoseconds; a longer or open-ended pause wins."""
        until = None if duration_ns is None else now_ns + duration_ns
        if self._paused:
            current = self._pause_until_ns
            if until is None or (current is not None and until > current):
                self._pause_until_ns = until
            return
        if self._controls is not None:
            self._controls.set_trading_active(False, now_ns)
        self._paused = True
        self._pause_until_ns = until
        self.stats.pauses += 1

    def resume_trading(self, now_ns: int) -> None:
        """Ends the trading pause, if any."""
        if not self._paused:
            return
        self._paused = False
        self._pause_until_ns = None
        if self._controls is not None:
            self._controls.set_trading_active(True, now_ns)

    def deactivate_market(self, ticker: str, now_ns: int) -> None:
        """Deactivates ``ticker`` on the venue (status ``inactive``)."""
        if self._controls is not None:
            self._controls.set_market_active(ticker, False, now_ns)
        self.stats.deactivations += 1

    def activate_market(self, ticker: str, now_ns: int) -> None:
        """Reactivates ``ticker`` on the venue."""
        if self._controls is not None:
            self._controls.set_market_active(ticker, True, now_ns)

    def clear(self) -> None:
        """Forgets every pending counted fault, close request and stall (not pauses)."""
        self._drops.clear()
        self._writes.clear()
        self._rate_limits = 0
        self._close_requested = False
        self._stall_until_ns = None

    # Queries (server and hub)

    def should_drop(self, channel: str) -> bool:
        """Whether to drop this update message on ``channel``; a ``True`` uses up one drop."""
        if not self._drops:
            return False
        for drop in self._drops:
            if drop.channel is None or drop.channel == channel:
                drop.remaining -= 1
                if drop.remaining == 0:
                    self._drops.remove(drop)
                self.stats.dropped_messages += 1
                return True
        return False

    def take_close_sockets(self) -> bool:
        """Whether to close every websocket now (``True`` once per request)."""
        if not self._close_requested:
            return False
        self._close_requested = False
        self.stats.socket_closes += 1
        return True

    def stalled(self, now_ns: int) -> bool:
        """Whether the websocket feed is stalled at ``now_ns``."""
        return self._stall_until_ns is not None and now_ns < self._stall_until_ns

    @property
    def stall_until_ns(self) -> int | None:
        """When the last stall ends (it may be in the past), or ``None``."""
        return self._stall_until_ns

    def take_write_fault(self) -> WriteFault | None:
        """The fault for this order write, or ``None`` to answer normally."""
        if not self._writes:
            return None
        self.stats.write_faults += 1
        return self._writes.popleft()

    def take_rate_limit(self) -> bool:
        """Whether to answer this request with 429; a ``True`` uses up one."""
        if not self._rate_limits:
            return False
        self._rate_limits -= 1
        self.stats.rate_limited += 1
        return True

    def trading_paused(self, now_ns: int) -> bool:
        """Whether a fault-injected trading pause is in force at ``now_ns``."""
        if not self._paused:
            return False
        return self._pause_until_ns is None or now_ns < self._pause_until_ns

    @property
    def pause_until_ns(self) -> int | None:
        """When the current timed pause ends, or ``None`` (no pause, or open-ended)."""
        return self._pause_until_ns

    @property
    def pending_write_faults(self) -> int:
        """How many order writes will still fail."""
        return len(self._writes)

    @property
    def pending_rate_limits(self) -> int:
        """How many requests will still get 429."""
        return self._rate_limits

    @property
    def pending_drops(self) -> int:
        """How many websocket messages will still be dropped."""
        return sum(drop.remaining for drop in self._drops)


# Parsing


def parse_spec(spec: str) -> list[ScheduledFault]:
    """Parses a CLI fault spec (grammar in the module docstring) into scheduled faults.

    Args:
        spec: Comma-separated ``OFFSET:ACTION`` tokens; an empty or blank spec is no faults.

    Returns:
        The scheduled faults in the order written.

    Raises:
        FaultSpecError: naming the first malformed token and what is wrong with it.
    """
    return [_parse_token(token.strip()) for token in spec.split(",") if token.strip()]


def parse_duration_ns(text: str) -> int:
    """Parses a duration such as ``"30s"``, ``"1.5s"``, ``"500ms"``, ``"2m"`` into nanoseconds.

    Raises:
        ValueError: if the text is not a non-negative number followed by ms, s, m or h, or
            is finer than a nanosecond.
    """
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"duration {text!r}: expected a number and a unit (ms, s, m, h)")
    value = Decimal(match.group(1)) * _UNIT_NS[match.group(2)]
    if value != value.to_integral_value():
        raise ValueError(f"duration {text!r}: finer than a nanosecond")
    return int(value)


def _parse_token(token: str) -> ScheduledFault:
    offset_text, colon, action = token.partition(":")
    if not colon:
        raise FaultSpecError(token, "expected OFFSET:ACTION, e.g. 30s:close_ws")
    try:
        offset_ns = parse_duration_ns(offset_text.strip())
        fault = _parse_action(action.strip())
    except ValueError as e:
        raise FaultSpecError(token, str(e)) from e
    return ScheduledFault(offset_ns, fault)


def _parse_action(action: str) -> Fault:
    name, _, arg = action.partition("=")
    base, count = _split_count(name)
    parser = _ACTION_PARSERS.get(base)
    if parser is None:
        if base.startswith("write_"):
            return _parse_write(base, count, arg)
        raise ValueError(f"unknown action {name!r}")
    if count is not None and base not in _COUNTED:
        raise ValueError(f"action {base!r} takes no xN count")
    return parser(count or 1, arg)


def _split_count(name: str) -> tuple[str, int | None]:
    match = _COUNT_RE.fullmatch(name)
    assert match is not None  # the pattern matches every string
    count = match.group(2)
    if count is None:
        return name, None
    if int(count) < 1:
        raise ValueError(f"count in {name!r} must be at least 1")
    return match.group(1), int(count)


def _no_arg(base: str, arg: str) -> None:
    if arg:
        raise ValueError(f"action {base!r} takes no argument, got {arg!r}")


def _parse_drop(count: int, arg: str) -> Fault:
    if not arg:
        return DropWs(count)
    if arg == "any":
        return DropWs(count, None)
    if arg not in _CHANNELS:
        raise ValueError(f"unknown websocket channel {arg!r}")
    return DropWs(count, arg)


def _parse_close(count: int, arg: str) -> Fault:
    _no_arg("close_ws", arg)
    return CloseWs()


def _parse_stall(count: int, arg: str) -> Fault:
    if not arg:
        raise ValueError("stall needs a duration, e.g. stall=5s")
    return Stall(parse_duration_ns(arg))


def _parse_pause(count: int, arg: str) -> Fault:
    return Pause(parse_duration_ns(arg) if arg else None)


def _parse_resume(count: int, arg: str) -> Fault:
    _no_arg("resume", arg)
    return Resume()


def _parse_deactivate(count: int, arg: str) -> Fault:
    return Deactivate(_ticker("deactivate", arg))


def _parse_activate(count: int, arg: str) -> Fault:
    return Activate(_ticker("activate", arg))


def _parse_429(count: int, arg: str) -> Fault:
    _no_arg("429", arg)
    return RateLimitBurst(count)


def _parse_write(base: str, count: int | None, arg: str) -> Fault:
    _no_arg(base, arg)
    kind, _, outcome = base.removeprefix("write_").rpartition("_")
    if kind not in WRITE_FAULT_KINDS or outcome not in ("accepted", "rejected"):
        raise ValueError(
            f"unknown action {base!r}: expected write_{{5xx|timeout}}_{{accepted|rejected}}"
        )
    return FailWrites(kind, outcome == "accepted", count or 1)


def _ticker(action: str, arg: str) -> str:
    if not arg or any(ch.isspace() for ch in arg):
        raise ValueError(f"{action} needs a market ticker, e.g. {action}=KXSIMA-26NOV23-T50")
    return arg


_ACTION_PARSERS: Final = {
    "drop_ws": _parse_drop,
    "close_ws": _parse_close,
    "stall": _parse_stall,
    "pause": _parse_pause,
    "resume": _parse_resume,
    "deactivate": _parse_deactivate,
    "activate": _parse_activate,
    "429": _parse_429,
}
_COUNTED: Final = frozenset({"drop_ws", "429"})


# Helpers


def _offset_of(item: ScheduledFault) -> int:
    return item.offset_ns


def _count_suffix(count: int) -> str:
    return "" if count == 1 else f"x{count}"


def _format_duration(ns: int) -> str:
    if ns % _NS_PER_S == 0:
        return f"{ns // _NS_PER_S}s"
    if ns % 1_000_000 == 0:
        return f"{ns // 1_000_000}ms"
    whole, fraction = divmod(ns, _NS_PER_S)
    return f"{whole}.{fraction:09d}".rstrip("0") + "s"


def _seconds_to_ns(name: str, seconds: float) -> int:
    if seconds < 0:
        raise ValueError(f"{name}: must not be negative, got {seconds}")
    return round(seconds * _NS_PER_S)


def _check_count(name: str, n: int) -> None:
    if n < 1:
        raise ValueError(f"{name}: must be at least 1, got {n}")
