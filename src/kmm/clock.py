"""Clocks: the only place kmm reads time.

Pure modules never read the clock; callers pass ``now`` in. The live engine uses
:class:`LiveClock`; tests and the backtest use :class:`ManualClock`, which only moves when told.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "LiveClock", "ManualClock"]


class Clock(Protocol):
    """A source of time in nanoseconds."""

    def now_ns(self) -> int:
        """Wall-clock time since the Unix epoch, in nanoseconds."""
        ...

    def monotonic_ns(self) -> int:
        """A monotonic time in nanoseconds, for intervals."""
        ...


class LiveClock:
    """The system clock."""

    def now_ns(self) -> int:
        """Wall-clock time since the Unix epoch, in nanoseconds."""
        return time.time_ns()

    def monotonic_ns(self) -> int:
        """``time.monotonic_ns()``."""
        return time.monotonic_ns()


class ManualClock:
    """A clock that moves only when the caller advances it (tests, backtests)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """The current manual time, in nanoseconds."""
        return self._now_ns

    def monotonic_ns(self) -> int:
        """The same as :meth:`now_ns`: manual time never goes backwards."""
        return self._now_ns

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> None:
        """Moves time forward by ``seconds`` plus ``ns`` nanoseconds.

        Raises:
            ValueError: if the step is negative.
        """
        step = round(seconds * 1e9) + ns
        if step < 0:
            raise ValueError(f"cannot move a clock backwards by {step} ns")
        self._now_ns += step

    def set_ns(self, now_ns: int) -> None:
        """Jumps to ``now_ns``, which must not be earlier than the current time."""
        if now_ns < self._now_ns:
            raise ValueError(f"cannot move a clock backwards to {now_ns}")
        self._now_ns = now_ns
