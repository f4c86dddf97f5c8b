"""Throttles on a market's quote: do not requote into a sweep, stand aside in a jump.

Theory of operation
-------------------
Measured in the local exchange's ``jump`` scenario, most of the quoter's loss was requoting into
a sweep: a fill, then the same side quoted again one tick further on and filled again within
half a second as the price ran through it. A :class:`MarketThrottle` per market keeps the last
moves of its fair price and the time of our last fill on each side, and says which sides may be
quoted now:

* **After a fill** on a side, that side is not quoted for ``fill_cooldown_ns`` (0 disables
  this guard), and after that not until the fair price has stood still (moved less than
  ``settle_move`` from where it last moved to) for ``settle_ns`` (at most ``max_hold_ns`` after
  the fill, so a busy market is not left for good). The other side, which would reduce the
  position just taken, stays.
* **A jump**, a move of the fair price of ``jump_ticks`` ($0.0001 units) or more within
  ``jump_window_ns``, pulls both sides until the price has stood still for ``settle_ns``
  (again at most ``max_hold_ns`` after the jump began).

Each hold ends at a known time (:meth:`MarketThrottle.next_change_ns`), so the caller can decide
the market again then, even if no book event comes. The reasons are named (``"fill_cooldown"``,
``"jump"``) for the tape. Pure: no I/O, time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from kmm.types import Price, Quote

__all__ = ["MarketThrottle", "ThrottleParams", "throttle_quote"]

_MS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class ThrottleParams:
    """When to hold a side (or both) of a market's quote.

    Attributes:
        fill_cooldown_ns: After a fill, that side is held at least this long.
        settle_ns: A hold ends once the fair price has not moved for this long.
        max_hold_ns: No hold lasts longer than this after what started it.
        jump_ticks: A fair-price move of at least this ($0.0001 units) within
            ``jump_window_ns`` is a jump; 0 disables the jump guard.
        jump_window_ns: The window a jump is measured over.
        settle_move: A change of the fair price smaller than this ($0.0001 units) from where
            it last moved to is not a move (a thin book's touch flickers by a tick).
    """

    fill_cooldown_ns: int = 500 * _MS
    settle_ns: int = 500 * _MS
    max_hold_ns: int = 5_000 * _MS
    jump_ticks: Price = 300
    jump_window_ns: int = 1_000 * _MS
    settle_move: Price = 0


@dataclass(slots=True)
class MarketThrottle:
    """One market's throttle state (see the module docstring)."""

    params: ThrottleParams
    last_move_ns: int = 0
    fill_ns: list[int] = field(default_factory=lambda: [0, 0])
    jump_ns: int = 0
    _fair: float | None = None
    _moves: deque[tuple[int, float]] = field(default_factory=deque)

    def on_fair(self, fair: float, now_ns: int) -> None:
        """The market's fair price at ``now_ns`` (called on every decision)."""
        params = self.params
        anchor = self._fair
        if anchor is not None and (fair == anchor or abs(fair - anchor) < params.settle_move):
            return
        self._fair = fair
        self.last_move_ns = now_ns
        if not params.jump_ticks:
            return
        moves = self._moves
        moves.append((now_ns, fair))
        while moves and moves[0][0] < now_ns - params.jump_window_ns:
            moves.popleft()
        prices = [price for _, price in moves]
        if max(prices) - min(prices) >= params.jump_ticks and not self._holding(
            self.jump_ns, now_ns
        ):
            self.jump_ns = now_ns

    def idle(self, now_ns: int) -> bool:
        """Whether no hold can be in force at ``now_ns`` (the common case, checked first);
        holds past their maximum are forgotten here."""
        horizon = now_ns - self.params.max_hold_ns
        fills = self.fill_ns
        if self.jump_ns and self.jump_ns <= horizon:
            self.jump_ns = 0
        if fills[0] and fills[0] <= horizon:
            fills[0] = 0
        if fills[1] and fills[1] <= horizon:
            fills[1] = 0
        return not (self.jump_ns or fills[0] or fills[1])

    def on_fill(self, is_bid: bool, now_ns: int) -> None:
        """One of our orders on that side (``is_bid``: our bid) filled at ``now_ns``."""
        if self.params.fill_cooldown_ns:  # 0 disables the fill guard
            self.fill_ns[0 if is_bid else 1] = now_ns

    def _holding(self, since_ns: int, now_ns: int, minimum_ns: int = 0) -> bool:
        """Whether a hold that began at ``since_ns`` still holds at ``now_ns``."""
        if not since_ns:
            return False
        params = self.params
        if now_ns >= since_ns + params.max_hold_ns:
            return False
        return now_ns < since_ns + minimum_ns or now_ns < self.last_move_ns + params.settle_ns

    def held(self, now_ns: int) -> tuple[str | None, str | None]:
        """Why the bid and the ask are held now (``None``: free to quote)."""
        if self._holding(self.jump_ns, now_ns):
            return "jump", "jump"
        cooldown = self.params.fill_cooldown_ns
        bid = "fill_cooldown" if self._holding(self.fill_ns[0], now_ns, cooldown) else None
        ask = "fill_cooldown" if self._holding(self.fill_ns[1], now_ns, cooldown) else None
        return bid, ask

    def next_change_ns(self, now_ns: int) -> int | None:
        """The next time a hold may end (decide the market again then), or ``None``."""
        params = self.params
        ends = []
        for since, minimum in (
            (self.jump_ns, 0),
            (self.fill_ns[0], params.fill_cooldown_ns),
            (self.fill_ns[1], params.fill_cooldown_ns),
        ):
            if self._holding(since, now_ns, minimum):
                settled = max(since + minimum, self.last_move_ns + params.settle_ns)
                ends.append(min(settled, since + params.max_hold_ns))
        return min(ends) if ends else None


def throttle_quote(quote: Quote, held: tuple[str | None, str | None]) -> Quote:
    """``quote`` without the sides ``held`` names a reason for."""
    bid_held, ask_held = held
    if bid_held is None and ask_held is None:
        return quote
    return Quote(
        quote.ticker,
        None if bid_held else quote.bid_price,
        0 if bid_held else quote.bid_qty,
        None if ask_held else quote.ask_price,
        0 if ask_held else quote.ask_qty,
    )
