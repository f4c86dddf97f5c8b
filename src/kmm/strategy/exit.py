"""Working a position out of a market: the exit's one order, from the book and a price cap.

Theory of operation
-------------------
An exit replaces the market maker's two quotes by one order on the side that reduces the
position (long YES sells YES, long NO buys YES), sized to the whole position (capped at the
largest order), never on the other side. Its price is never worse than a *limit* fixed when
the exit began: the fair price then (the *anchor*, without our own orders) less
``max_slippage`` for a sale, plus it for a purchase, rounded onto the grid in our favour. So a
market that runs away from us stalls the exit at the limit instead of selling into the hole.

Two styles:

* ``take`` (``kmm flatten``, flatten-before-close): cross the spread. A sale is priced at
  others' best bid when that is at or above the limit (the order takes what rests there and
  whatever is left rests at that price), else at the limit. With no bid to take it rests
  passively, as below. The venue's order is a limit order without post-only, reduce-only.
* ``passive`` (the end of a run, before a close): never take. A sale is priced one tick
  inside others' best ask, or at it when the spread is one tick (at ``ceil(anchor)`` when no
  one else offers), always above the best bid so it stays post-only, and never below the
  limit.

A purchase mirrors a sale. No position, no anchor yet, or a book empty on the side priced
from gives an empty quote: nothing is sent until the market can be priced.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from kmm.book.grid import PriceGrid
from kmm.types import Price, Qty, Quote

__all__ = ["ExitPlan", "ExitStyle", "exit_quote"]


class ExitStyle(StrEnum):
    """How an exit prices its order (see the module docstring)."""

    TAKE = "take"
    PASSIVE = "passive"


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """One market's exit.

    Attributes:
        style: Take liquidity, or rest passively.
        max_slippage: How far from the anchor the order may go, in $0.0001 units.
        anchor: The fair YES price when the exit began, in $0.0001 units (a float, as the
            pipeline's fair price is); ``None`` until the market has one.
        reason: Why the market exits (``flatten``, ``before_close``, ``stop``), for the log
            and the tape.
    """

    style: ExitStyle
    max_slippage: Price
    anchor: float | None = None
    reason: str = ""

    def limit(self, selling: bool, grid: PriceGrid) -> Price | None:
        """The worst price the exit accepts on the grid (None: no anchor yet)."""
        anchor = self.anchor
        if anchor is None:
            return None
        if selling:
            price = math.ceil(anchor - self.max_slippage - 1e-6)
            return grid.min_price if price < grid.min_price else grid.ceil(price)
        price = math.floor(anchor + self.max_slippage + 1e-6)
        return grid.max_price if price > grid.max_price else grid.floor(price)


def exit_quote(
    ticker: str,
    position: Qty,
    book: tuple[Price | None, Price | None, Price | None, Price | None],
    plan: ExitPlan,
    grid: PriceGrid,
    max_order_qty: Qty,
) -> Quote:
    """The one order that works a market's position out now.

    Args:
        ticker: The market.
        position: Our signed position in 0.01 contracts (YES +, NO −).
        book: ``(best_bid, best_ask, touch_bid, touch_ask)``: the whole book's best YES
            prices (what a post-only order must not cross) and others' (the book without
            our orders: what a take hits and a passive order steps inside).
        plan: The exit's style, anchor and slippage cap.
        grid: The market's valid prices.
        max_order_qty: The largest order, in 0.01 contracts.

    Returns:
        A quote with only the reducing side, or an empty quote.
    """
    empty = Quote(ticker, None, 0, None, 0)
    if position == 0:
        return empty
    selling = position > 0
    limit = plan.limit(selling, grid)
    if limit is None:
        return empty
    qty = min(abs(position), max_order_qty)
    best_bid, best_ask, touch_bid, touch_ask = book
    if selling:
        price = _sale_price(plan, limit, best_bid, touch_bid, touch_ask, grid)
        return empty if price is None else Quote(ticker, None, 0, price, qty)
    price = _purchase_price(plan, limit, best_ask, touch_bid, touch_ask, grid)
    return empty if price is None else Quote(ticker, price, qty, None, 0)


def _sale_price(
    plan: ExitPlan,
    limit: Price,
    best_bid: Price | None,
    touch_bid: Price | None,
    touch_ask: Price | None,
    grid: PriceGrid,
) -> Price | None:
    if plan.style is ExitStyle.TAKE and touch_bid is not None:
        return touch_bid if touch_bid >= limit else limit
    assert plan.anchor is not None
    price: Price | None
    if touch_ask is not None:
        inside = grid.offset(touch_ask, -1)
        price = (
            inside if inside is not None and (best_bid is None or inside > best_bid) else touch_ask
        )
    else:
        price = grid.ceil(math.ceil(plan.anchor - 1e-6))
    if price is not None and best_bid is not None and price <= best_bid:
        price = grid.offset(best_bid, 1)
    if price is None:
        return None
    return price if price >= limit else limit


def _purchase_price(
    plan: ExitPlan,
    limit: Price,
    best_ask: Price | None,
    touch_bid: Price | None,
    touch_ask: Price | None,
    grid: PriceGrid,
) -> Price | None:
    if plan.style is ExitStyle.TAKE and touch_ask is not None:
        return touch_ask if touch_ask <= limit else limit
    assert plan.anchor is not None
    price: Price | None
    if touch_bid is not None:
        inside = grid.offset(touch_bid, 1)
        price = (
            inside if inside is not None and (best_ask is None or inside < best_ask) else touch_bid
        )
    else:
        price = grid.floor(math.floor(plan.anchor + 1e-6))
    if price is not None and best_ask is not None and price >= best_ask:
        price = grid.offset(best_ask, -1)
    if price is None:
        return None
    return price if price <= limit else limit
