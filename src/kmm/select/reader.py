"""Reads what discovery needs from the venue: the shell around :mod:`kmm.select.discovery`.

Theory of operation
-------------------
Kalshi's markets no longer carry a category or a liquidity figure, so a market's view is
put together from five reads, in this order, each a few requests however many markets are
open:

1. ``GET /series`` (one request): each series' category;
2. ``GET /events?status=open`` (200 a page): each event's series;
3. ``GET /markets?status=open&mve_filter=exclude`` (1000 a page): the markets, with their
   type, creation and close times and 24 h volume;
4. ``GET /markets/trades?min_ts=`` (1000 a page, at most ``max_trade_pages``): the public
   trades of the last ``recent_s`` seconds, counted per market;
5. ``GET /markets/orderbooks`` (100 tickers a request): the real book of every market that
   passed the filters that need no book (so books are read only for candidates).

:class:`ReadStats` counts the requests and the read tokens they cost (10 each, Kalshi's
default cost) next to the wall time, so that a caller can show discovery stays inside the
read budget. Time comes from the caller's clock; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from kmm.kalshi.rest import KalshiRest, MarketListing, OrderBookLegs
from kmm.select.discovery import DiscoveryParams, MarketView, refusal
from kmm.types import ONE_DOLLAR, Price, Qty

__all__ = ["ReadStats", "book_free_views", "needs_book", "read_views", "with_books"]

_NS_PER_S: Final = 1_000_000_000
READ_COST: Final = 10
"""Read tokens per request (Kalshi's default cost)."""
_BOOK_REASONS: Final = ("one-sided book", "spread ", "depth ", "mid ")
"""Refusals that only a real book can decide: a view without one is not refused for them."""


@dataclass(slots=True)
class ReadStats:
    """What one read of the venue cost.

    Attributes:
        requests: REST requests sent.
        markets: Open markets listed (combos left out).
        books: Order books read.
        trades: Recent public trades read.
        wall_s: Wall time of the whole read.
    """

    requests: int = 0
    markets: int = 0
    books: int = 0
    trades: int = 0
    wall_s: float = 0.0

    @property
    def tokens(self) -> int:
        """Read tokens spent (:data:`READ_COST` a request)."""
        return self.requests * READ_COST


async def read_views(
    rest: KalshiRest,
    params: DiscoveryParams,
    now_ns: int,
    *,
    recent_s: float = 600.0,
    depth_levels: int = 3,
    max_trade_pages: int = 10,
) -> tuple[list[MarketView], dict[str, MarketListing], ReadStats]:
    """Every open market's view, with books read only for the markets the book-free
    filters keep.

    Returns:
        The views (with books where read), the listings by ticker (what the engine trades a
        market by), and what the read cost.
    """
    started = time.perf_counter()
    stats = ReadStats()
    before = rest.requests
    categories = await rest.series_categories()
    series_of = await rest.event_series_map()
    listings = await rest.listings()
    trades = await rest.recent_trades(
        (now_ns // _NS_PER_S) - round(recent_s), max_pages=max_trade_pages
    )
    views = book_free_views(listings, series_of, categories, trades)
    candidates = [v.ticker for v in views if needs_book(v, params, now_ns)]
    books = await rest.orderbooks(candidates)
    views = with_books(views, books, depth_levels)
    stats.requests = rest.requests - before
    stats.markets = len(listings)
    stats.books = len(books)
    stats.trades = len(trades)
    stats.wall_s = time.perf_counter() - started
    return views, {listing.info.ticker: listing for listing in listings}, stats


def book_free_views(
    listings: Sequence[MarketListing],
    series_of: Mapping[str, str],
    categories: Mapping[str, str],
    trades: Sequence[tuple[str, Qty]],
) -> list[MarketView]:
    """Each listed market's view before its book is read: its series' category and its
    recent public trades (``(ticker, count)`` pairs) counted."""
    counts: Counter[str] = Counter()
    volumes: Counter[str] = Counter()
    for ticker, count in trades:
        counts[ticker] += 1
        volumes[ticker] += count
    return [
        _view(listing, series_of, categories, counts[t], volumes[t])
        for listing in listings
        for t in (listing.info.ticker,)
    ]


def with_books(
    views: Sequence[MarketView], books: Mapping[str, OrderBookLegs], levels: int
) -> list[MarketView]:
    """The views with the top of book and depth of every market whose book was read."""
    return [_with_book(v, books[v.ticker], levels) if v.ticker in books else v for v in views]


def _view(
    listing: MarketListing,
    series_of: Mapping[str, str],
    categories: Mapping[str, str],
    recent_trades: int,
    recent_volume: Qty,
) -> MarketView:
    info = listing.info
    series = series_of.get(info.event_ticker) or info.event_ticker.split("-", 1)[0]
    return MarketView(
        ticker=info.ticker,
        event_ticker=info.event_ticker,
        series_ticker=series,
        category=categories.get(series, ""),
        market_type=listing.market_type,
        combo=listing.combo,
        created_ns=listing.created_ns,
        close_ns=info.close_ns,
        volume_24h=listing.volume_24h,
        recent_trades=recent_trades,
        recent_volume=recent_volume,
        yes_bid=info.yes_bid or None,
        yes_ask=info.yes_ask if info.yes_ask is not None and info.yes_ask < ONE_DOLLAR else None,
        bid_depth=0,
        ask_depth=0,
    )


def needs_book(view: MarketView, params: DiscoveryParams, now_ns: int) -> bool:
    """Whether ``view`` passes every filter that does not need its book."""
    reason = refusal(view, params, now_ns)
    return reason is None or reason.startswith(_BOOK_REASONS)


def _with_book(view: MarketView, book: OrderBookLegs, levels: int) -> MarketView:
    """``view`` with its top of book and depth from the real order book."""
    yes_bids, no_bids = book
    best_yes = yes_bids[-levels:]
    best_no = no_bids[-levels:]
    bid: Price | None = yes_bids[-1][0] if yes_bids else None
    ask: Price | None = ONE_DOLLAR - no_bids[-1][0] if no_bids else None
    return replace(
        view,
        yes_bid=bid,
        yes_ask=ask,
        bid_depth=sum(q for _, q in best_yes),
        ask_depth=sum(q for _, q in best_no),
    )
