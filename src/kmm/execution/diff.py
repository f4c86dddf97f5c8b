"""The order diff: desired quote vs live orders → keep, cancel, place, amend.

Theory of operation
-------------------
The target state is one resting order per side at the desired price and size. :func:`diff`
compares a :class:`~kmm.types.Quote` with the live orders of its market and says what to do,
with hysteresis so that quotes do not flicker: a price move smaller than ``min_move_ticks``
ticks or a size change smaller than ``min_qty_change`` is ignored, and a change that does not
reduce risk (a bid that should go up, an ask that should come down, a size that should grow)
waits until the order has rested ``min_rest_ns``. A change that reduces risk (the bid is now
too high, the ask too low, the size too large) is made at once. Changes are amends: one
request (10 tokens) that keeps the order id, instead of a cancel (2) plus a create (10) and a
window with no quote. A size-only amend keeps the live price, so a size decrease keeps queue
priority (Kalshi keeps priority only when size strictly decreases at the same price).

Rules, per side (``thr`` = ``min_move_ticks * tick_at(live price)``; "adverse" is the live
bid above the desired bid, or the live ask below the desired ask):

================================================  ==========================================
Situation                                         Action
================================================  ==========================================
desired price is ``None`` or desired size ≤ 0     cancel every RESTING / PENDING_AMEND order
                                                  now (safety beats hysteresis)
an order is PENDING_NEW, PENDING_CANCEL or        leave it alone; never place on that side
UNKNOWN                                           (that is how a bot double-fills)
several RESTING / PENDING_AMEND orders            keep the one in PENDING_AMEND, else the one
                                                  nearest the desired price (older first);
                                                  cancel the others
no order on the side and nothing in flight        place the desired order
the kept order is PENDING_AMEND                   keep; wait for the amend reply
abs(Δprice) < thr and abs(Δsize) <                keep
min_qty_change
adverse Δprice ≥ thr, or size too large by        amend now, whatever the order's age
≥ min_qty_change
any other change, order younger than              keep
``min_rest_ns``
any other change, order old enough                amend
================================================  ==========================================

An amend moves the price to the desired price only if the price change is due (≥ ``thr``);
its size is always the desired size. Orders in flight appear in no list of the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from kmm.execution.orders import OrderState
from kmm.types import BookSide, OrderIntent, Price, Qty, Quote

__all__ = ["Amend", "DiffParams", "DiffResult", "LiveOrder", "diff"]

_RESTING = OrderState.RESTING
_PENDING_AMEND = OrderState.PENDING_AMEND
_BID = BookSide.BID
_ASK = BookSide.ASK


@dataclass(frozen=True, slots=True)
class DiffParams:
    """Hysteresis of the diff.

    Attributes:
        min_move_ticks: A price change smaller than this many ticks is ignored (1 = any).
        min_rest_ns: How long an order rests before a change that does not reduce risk.
        min_qty_change: A size change smaller than this (0.01 contracts) is ignored.

    Raises:
        ValueError: if a field is out of range, naming it.
    """

    min_move_ticks: int = 1
    min_rest_ns: int = 0
    min_qty_change: Qty = 1

    def __post_init__(self) -> None:
        if self.min_move_ticks < 1:
            raise ValueError(f"min_move_ticks must be >= 1, got {self.min_move_ticks}")
        if self.min_rest_ns < 0:
            raise ValueError(f"min_rest_ns must be >= 0, got {self.min_rest_ns}")
        if self.min_qty_change < 1:
            raise ValueError(f"min_qty_change must be >= 1, got {self.min_qty_change}")


class LiveOrder(Protocol):
    """What the diff reads of a live order (:class:`~kmm.execution.orders.TrackedOrder`)."""

    @property
    def client_order_id(self) -> str: ...
    @property
    def side(self) -> BookSide: ...
    @property
    def price(self) -> Price: ...
    @property
    def remaining(self) -> Qty: ...
    @property
    def last_change_ns(self) -> int: ...
    @property
    def state(self) -> OrderState: ...


@dataclass(frozen=True, slots=True)
class Amend:
    """Move one resting order to a new price and/or size.

    Attributes:
        client_order_id: The order to amend.
        side: Its side (unchanged by the amend).
        price: The new YES price.
        qty: The new *resting* size; the tracker turns it into Kalshi's total count.
        keeps_priority: True when the amend only decreases size at the same price.
    """

    client_order_id: str
    side: BookSide
    price: Price
    qty: Qty
    keeps_priority: bool


@dataclass(slots=True)
class DiffResult:
    """What to do in one market. ``keep`` and ``cancel`` hold client order ids."""

    keep: list[str]
    cancel: list[str]
    place: list[OrderIntent]
    amend: list[Amend]

    @property
    def is_noop(self) -> bool:
        """True when nothing needs to be sent."""
        return not (self.cancel or self.place or self.amend)


def diff(
    quote: Quote,
    live: Iterable[LiveOrder],
    now_ns: int,
    params: DiffParams,
    tick_at: Callable[[Price], Price],
) -> DiffResult:
    """Compares the desired quote with the live orders of its market.

    Args:
        quote: The desired bid and ask (a ``None`` price means no order on that side).
        live: The market's live orders, in any state that rests or may rest.
        now_ns: The current time.
        params: Hysteresis settings.
        tick_at: The price grid's tick size at a price.

    Returns:
        The orders to keep, cancel, place and amend.
    """
    result = DiffResult([], [], [], [])
    want_bid = quote.bid_price if quote.bid_qty > 0 else None
    want_ask = quote.ask_price if quote.ask_qty > 0 else None
    # One pass: per side, the order to keep (primary) and whether one is in flight (busy)
    bid: LiveOrder | None = None
    ask: LiveOrder | None = None
    bid_busy = ask_busy = False
    cancel = result.cancel
    for order in live:
        state = order.state
        is_bid = order.side is _BID
        if state is not _RESTING and state is not _PENDING_AMEND:
            if is_bid:
                bid_busy = True
            else:
                ask_busy = True
            continue
        want = want_bid if is_bid else want_ask
        if want is None:
            cancel.append(order.client_order_id)
            continue
        kept = _prefer(bid if is_bid else ask, order, want, cancel)
        if is_bid:
            bid = kept
        else:
            ask = kept
    _settle(
        quote.ticker, _BID, want_bid, quote.bid_qty, bid, bid_busy, now_ns, params, tick_at, result
    )
    _settle(
        quote.ticker, _ASK, want_ask, quote.ask_qty, ask, ask_busy, now_ns, params, tick_at, result
    )
    return result


def _prefer(
    current: LiveOrder | None, order: LiveOrder, price: Price, cancel: list[str]
) -> LiveOrder:
    """Returns the better of two orders to keep on a side and queues the other for cancel."""
    if current is None:
        return order
    if _better(order, current, price):
        cancel.append(current.client_order_id)
        return order
    cancel.append(order.client_order_id)
    return current


def _better(a: LiveOrder, b: LiveOrder, price: Price) -> bool:
    """True if ``a`` is a better order to keep than ``b`` for the desired ``price``."""
    if (a.state is _PENDING_AMEND) != (b.state is _PENDING_AMEND):
        return a.state is _PENDING_AMEND
    da, db = abs(a.price - price), abs(b.price - price)
    return da < db or (da == db and a.last_change_ns < b.last_change_ns)


def _settle(
    ticker: str,
    side: BookSide,
    price: Price | None,
    qty: Qty,
    primary: LiveOrder | None,
    busy: bool,
    now_ns: int,
    params: DiffParams,
    tick_at: Callable[[Price], Price],
    result: DiffResult,
) -> None:
    """Decides the one kept order of a side: place, keep or amend."""
    if primary is None:
        if price is not None and not busy:
            result.place.append(OrderIntent(ticker, side, price, qty))
        return
    amend = None
    if price is not None and primary.state is _RESTING:
        amend = _decide(primary, side, price, qty, now_ns, params, tick_at)
    if amend is None:
        result.keep.append(primary.client_order_id)
    else:
        result.amend.append(amend)


def _decide(
    order: LiveOrder,
    side: BookSide,
    price: Price,
    qty: Qty,
    now_ns: int,
    params: DiffParams,
    tick_at: Callable[[Price], Price],
) -> Amend | None:
    """Keep (None) or amend the one resting order of a side."""
    live_price = order.price
    move = price - live_price
    min_qty = params.min_qty_change
    excess = order.remaining - qty
    size_due = excess >= min_qty or -excess >= min_qty
    if move:
        threshold = params.min_move_ticks * tick_at(live_price)
        price_due = move >= threshold or -move >= threshold
        adverse = (-move if side is _BID else move) >= threshold
    else:
        price_due = adverse = False
    if not (price_due or size_due):
        return None
    if not (adverse or excess >= min_qty) and now_ns - order.last_change_ns < params.min_rest_ns:
        return None
    new_price = price if price_due else live_price
    keeps = new_price == live_price and qty < order.remaining
    return Amend(order.client_order_id, side, new_price, qty, keeps)
