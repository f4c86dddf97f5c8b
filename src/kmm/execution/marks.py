"""Marking a position to its market: the price unrealized P&L (and so the kill switch) uses.

Theory of operation
-------------------
A two-sided book marks at its mid. When one side is empty (after a jump, near a close), the mid
is gone and the last one is stale: marking there overstated P&L (a run showed −$8.53 where the
exchange's truth was −$10.38). :func:`mark_position` marks such a book conservatively, for the
side of the position:

============  =====================================================  ==================
book          long YES (exits by selling into the bid)               source
============  =====================================================  ==================
bid and ask   the mid                                                ``mid``
bid only      the bid                                                ``bid``
ask only      min(last trade, ask) − haircut                         ``*-haircut``
empty         last trade − haircut, else the previous mark − haircut ``*-haircut``
============  =====================================================  ==================

A short YES position mirrors it (the ask, ``+`` the haircut); a flat one takes the mid, the side
that is left, the last trade or the previous mark. Marks stay in [0, $1]. The source goes in the
tape next to the mark, so a reader knows which figure a P&L row stood on.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import NamedTuple

from kmm.types import ONE_DOLLAR, Price, Qty

__all__ = ["Mark", "mark_position"]


class Mark(NamedTuple):
    """A mark price and where it came from (``mid``, ``bid``, ``ask``, ``trade``, ``last``,
    with ``-haircut`` when it was moved against the position)."""

    price: Price
    source: str


def _clamp(price: Price) -> Price:
    return min(max(price, 0), ONE_DOLLAR)


def mark_position(
    qty: Qty,
    best_bid: Price | None,
    best_ask: Price | None,
    last_trade: Price | None,
    previous: Price | None,
    haircut: Price,
) -> Mark | None:
    """The mark of a position of ``qty`` (YES +, NO −) in a market with this book.

    Args:
        qty: The signed position.
        best_bid: The best YES bid, or None when no one bids.
        best_ask: The best YES ask, or None when no one offers.
        last_trade: The YES price of the market's last trade, if any.
        previous: The mark used last time, if any.
        haircut: How far a one-sided mark is moved against the position, price units.

    Returns:
        The mark, or None when nothing at all is known about the price.
    """
    if best_bid is not None and best_ask is not None:
        return Mark((best_bid + best_ask) // 2, "mid")
    if qty == 0:
        for price, source in ((best_bid, "bid"), (best_ask, "ask"), (last_trade, "trade")):
            if price is not None:
                return Mark(price, source)
        return None if previous is None else Mark(previous, "last")
    long = qty > 0
    exit_side, other = (best_bid, best_ask) if long else (best_ask, best_bid)
    if exit_side is not None:
        return Mark(exit_side, "bid" if long else "ask")
    sign = -1 if long else 1
    candidates = [(p, s) for p, s in ((last_trade, "trade"), (other, "ask" if long else "bid"))
                  if p is not None]  # fmt: skip
    if candidates:
        pick = min if long else max
        price, source = pick(candidates, key=lambda c: c[0])
        return Mark(_clamp(price + sign * haircut), f"{source}-haircut")
    if previous is None:
        return None
    return Mark(_clamp(previous + sign * haircut), "last-haircut")
