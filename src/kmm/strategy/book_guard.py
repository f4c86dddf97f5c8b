"""Guards on the state of others' book: stand aside in a spread shock, quote less when thin.

Theory of operation
-------------------
A :class:`BookGuard` per market looks at others' best bid and ask (the book without our
orders) at every decision:

* **Spread shock.** Others' spread is compared with its own time-weighted average (half-life
  ``spread_halflife_ns``, the average before this decision): a spread above ``shock_ratio``
  times the average and at least ``shock_min`` wider than it, or a side with no one on it, is a
  bad check. A shock means liquidity has just left, usually ahead of news or of a sweep: both
  sides are pulled (``spread_shock`` on the tape).
* **Thin book.** Others' size at the touch below ``thin_depth`` on either side is a bad check:
  one order there moves the touch, so our quote is sized down to ``thin_size_factor`` of its
  size, rounded down to a lot (0 pulls it; ``thin`` on the tape).

Each guard turns its checks into a state with :class:`~kmm.strategy.hysteresis.Hysteresis`:
on after ``trigger`` bad checks in a row, off after ``recover`` good ones. Either guard is off
when its threshold is 0. Pure: no I/O, time is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kmm.strategy.hysteresis import Hysteresis
from kmm.types import Price, Qty, Quote

__all__ = ["BookGuard", "BookGuardParams"]

_LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class BookGuardParams:
    """When others' book counts as shocked or thin, and what that does to the quote.

    Attributes:
        shock_ratio: A spread above this times its average is a shock (0 disables it).
        shock_min: ...and only when it is at least this much wider than the average
            ($0.0001 units), so a 1-tick book going to 2 ticks is not one.
        spread_halflife_ns: Half-life of the spread's average.
        thin_depth: Others' size at the touch below this on a side (0.01 contracts) is thin
            (0 disables it).
        thin_size_factor: The share of the quote's sizes kept while thin (0 pulls it).
        trigger: Bad checks in a row that switch a guard on.
        recover: Good checks in a row that switch it off.
    """

    shock_ratio: float = 0.0
    shock_min: Price = 200
    spread_halflife_ns: int = 60_000_000_000
    thin_depth: Qty = 0
    thin_size_factor: float = 0.5
    trigger: int = 2
    recover: int = 3

    @property
    def enabled(self) -> bool:
        """Whether either guard is on."""
        return bool(self.shock_ratio or self.thin_depth)


@dataclass(slots=True)
class BookGuard:
    """One market's book guards (see the module docstring)."""

    params: BookGuardParams
    average_spread: float | None = None
    shock: Hysteresis = field(init=False)
    thin: Hysteresis = field(init=False)
    _last_ns: int = 0

    def __post_init__(self) -> None:
        params = self.params
        self.shock = Hysteresis(params.trigger, params.recover)
        self.thin = Hysteresis(params.trigger, params.recover)

    def on_book(
        self,
        top: tuple[Price | None, Qty, Price | None, Qty],
        now_ns: int,
    ) -> None:
        """Others' best bid and ask with their sizes at ``now_ns`` (every decision)."""
        bid, bid_qty, ask, ask_qty = top
        params = self.params
        if params.thin_depth:
            self.thin.check(min(bid_qty, ask_qty) < params.thin_depth)
        if not params.shock_ratio:
            return
        if bid is None or ask is None:
            self.shock.check(True)
            return
        spread = ask - bid
        average = self.average_spread
        if average is None:
            self.average_spread = float(spread)
            self._last_ns = now_ns
            self.shock.check(False)
            return
        self.shock.check(
            spread > params.shock_ratio * average and spread - average >= params.shock_min
        )
        dt = now_ns - self._last_ns
        if dt > 0:
            weight = 1.0 - math.exp(-dt * _LN2 / params.spread_halflife_ns)
            self.average_spread = average + weight * (spread - average)
            self._last_ns = now_ns

    def apply(self, quote: Quote, lot_qty: Qty) -> tuple[Quote, str]:
        """``quote`` as the guards allow it now, and which acted (``""``: none)."""
        if self.shock.on:
            return Quote(quote.ticker, None, 0, None, 0), "spread_shock"
        if not self.thin.on:
            return quote, ""
        factor = self.params.thin_size_factor
        bid_qty = _scaled(quote.bid_qty, factor, lot_qty)
        ask_qty = _scaled(quote.ask_qty, factor, lot_qty)
        return (
            Quote(
                quote.ticker,
                quote.bid_price if bid_qty else None,
                bid_qty,
                quote.ask_price if ask_qty else None,
                ask_qty,
            ),
            "thin",
        )


def _scaled(qty: Qty, factor: float, lot_qty: Qty) -> Qty:
    scaled = int(qty * factor)
    return scaled - scaled % lot_qty
