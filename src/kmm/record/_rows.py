"""Rows of the run's CSV files: column names and exact decimal text from integers.

Everything here runs on the recorder's writer thread, never on the trading path. Values arrive
as the integers the trading side holds (Price in $0.0001, Qty in 0.01 contract, Money in
$0.000001, times in ns) and leave as decimal strings built by integer arithmetic only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from kmm.types import ONE_DOLLAR, Fill, Money, Price, Qty, format_count, format_money, format_price

__all__ = [
    "FILL_COLUMNS",
    "ORDER_COLUMNS",
    "TAPE_COLUMNS",
    "Timestamps",
    "count_text",
    "fill_row",
    "latency_text",
    "mid_text",
    "money_text",
    "order_row",
    "price_text",
    "tape_row",
]

TAPE_COLUMNS: Final = (
    "ts",
    "ticker",
    "event",
    "mid",
    "best_bid",
    "best_ask",
    "my_bid",
    "my_bid_qty",
    "my_ask",
    "my_ask_qty",
    "inventory",
    "unrealized_pnl",
    "realized_pnl",
    "fees",
    "latency_ms",
    "quote_bid",
    "quote_bid_qty",
    "quote_ask",
    "quote_ask_qty",
    "mark",
    "mark_source",
    "fair",
    "reservation",
    "half_spread",
    "sigma",
    "kappa",
    "held",
)
ORDER_COLUMNS: Final = (
    "ts",
    "ticker",
    "client_order_id",
    "order_id",
    "event",
    "side",
    "price",
    "qty",
    "code",
    "reason",
)
FILL_COLUMNS: Final = (
    "ts",
    "trade_id",
    "order_id",
    "ticker",
    "side",
    "price",
    "qty",
    "fee",
    "is_taker",
    "position_after",
    "source",
)

_NS_PER_S: Final = 1_000_000_000
_NS_PER_US: Final = 1_000
# Every price on the $0.0001 grid from $0 to $1, formatted once: a list index per field
_PRICE_TEXT: Final = tuple(format_price(p) for p in range(ONE_DOLLAR + 1))
# Counts, fees and realized P&L repeat from row to row: their text is cached (bounded)
_CACHE_LIMIT: Final = 50_000
_count_cache: dict[int, str] = {}
_money_cache: dict[int, str] = {}


class Timestamps:
    """Formats ns since the epoch as ISO 8601 UTC with microseconds and ``+00:00``.

    The date and time of day are formatted once per second; rows within the same second
    only add the microseconds. Sub-microsecond digits are truncated, not rounded.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def text(self, ts_ns: int) -> str:
        """``2026-11-23T12:00:00.123456+00:00`` for ``ts_ns``."""
        second, ns = divmod(ts_ns, _NS_PER_S)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{ns // _NS_PER_US:06d}+00:00"


def price_text(price: Price | None) -> str:
    """A price in dollars with four decimals, or ``""`` for None."""
    if price is None:
        return ""
    if 0 <= price <= ONE_DOLLAR:
        return _PRICE_TEXT[price]
    return format_price(price)


def mid_text(mid_x2: int | None) -> str:
    """Half of ``mid_x2`` (a sum of two prices) in dollars, exactly: 4 decimals, or 5 if odd."""
    if mid_x2 is None:
        return ""
    if mid_x2 < 0:
        return "-" + mid_text(-mid_x2)
    half = price_text(mid_x2 >> 1)
    return half + "5" if mid_x2 & 1 else half


def count_text(qty: Qty | None) -> str:
    """A count in contracts with two decimals, or ``""`` for None."""
    if qty is None:
        return ""
    text = _count_cache.get(qty)
    if text is None:
        if len(_count_cache) >= _CACHE_LIMIT:
            _count_cache.clear()
        text = _count_cache[qty] = format_count(qty)
    return text


def money_text(amount: Money | None) -> str:
    """An amount in dollars with six decimals, or ``""`` for None."""
    if amount is None:
        return ""
    text = _money_cache.get(amount)
    if text is None:
        if len(_money_cache) >= _CACHE_LIMIT:
            _money_cache.clear()
        text = _money_cache[amount] = format_money(amount)
    return text


def latency_text(latency_ns: int | None) -> str:
    """A duration in milliseconds with three decimals (truncated to the µs), or ``""``."""
    if latency_ns is None:
        return ""
    sign = "-" if latency_ns < 0 else ""
    whole, frac = divmod(abs(latency_ns) // _NS_PER_US, 1000)
    return f"{sign}{whole}.{frac:03d}"


def tape_row(item: tuple[Any, ...], ts: Timestamps) -> list[str]:
    """One tape.csv row from a queued tape tuple (tag first), in :data:`TAPE_COLUMNS` order."""
    (_, ts_ns, ticker, event, mid_x2, best_bid, best_ask, my_bid, my_bid_qty, my_ask,
     my_ask_qty, inventory, unrealized, realized, fees, latency_ns, quote_bid, quote_bid_qty,
     quote_ask, quote_ask_qty, mark, mark_source, terms) = item  # fmt: skip
    return [
        ts.text(ts_ns),
        ticker,
        event,
        mid_text(mid_x2),
        price_text(best_bid),
        price_text(best_ask),
        price_text(my_bid),
        count_text(my_bid_qty),
        price_text(my_ask),
        count_text(my_ask_qty),
        count_text(inventory),
        money_text(unrealized),
        money_text(realized),
        money_text(fees),
        latency_text(latency_ns),
        price_text(quote_bid),
        count_text(quote_bid_qty),
        price_text(quote_ask),
        count_text(quote_ask_qty),
        price_text(mark),
        mark_source,
        *terms_text(terms),
    ]


def terms_text(terms: tuple[float, float, float, float, float, str] | None) -> list[str]:
    """The quote's model terms as tape fields: fair, reservation and half-spread in dollars
    (5 decimals), σ per √s, κ per dollar, and the bands and throttles that held a side."""
    if terms is None:
        return ["", "", "", "", "", ""]
    fair, reservation, half, sigma, kappa, held = terms
    return [
        f"{fair / ONE_DOLLAR:.5f}",
        f"{reservation / ONE_DOLLAR:.5f}",
        f"{half / ONE_DOLLAR:.5f}",
        f"{sigma:.6f}",
        f"{kappa:.1f}",
        held,
    ]


def order_row(item: tuple[Any, ...], ts: Timestamps) -> list[str]:
    """One orders.csv row from a queued order tuple (tag first), in :data:`ORDER_COLUMNS` order."""
    _, ts_ns, ticker, client_order_id, order_id, event, side, price, qty, code, reason = item
    return [
        ts.text(ts_ns),
        ticker,
        client_order_id,
        order_id or "",
        event,
        side,
        price_text(price),
        count_text(qty),
        code,
        reason,
    ]


def fill_row(fill: Fill, position_after: Qty, source: str, ts: Timestamps) -> list[str]:
    """One fills.csv row, in :data:`FILL_COLUMNS` order."""
    return [
        ts.text(fill.ts_ms * 1_000_000),
        fill.trade_id,
        fill.order_id,
        fill.ticker,
        fill.side.value,
        price_text(fill.price),
        count_text(fill.qty),
        money_text(fill.fee),
        "True" if fill.is_taker else "False",
        count_text(position_after),
        source,
    ]
