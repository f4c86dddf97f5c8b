"""``kmm scan`` and ``kmm markets``: read the venue's open markets and show them, never trading.

``kmm markets`` lists the open markets (combos left out) with their series' category, time
to the close, top of book, 24 h volume and open interest, filtered by category, series,
time to close and volume. ``kmm scan`` runs discovery (:mod:`kmm.select.discovery`) on
every open market with the real order books of the candidates and prints the scored table:
each market's score, the features behind it, the position cap discovery would give it, and
why the others were refused; first, what the read cost in requests and read tokens.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TextIO

from kmm.app import discovery_params
from kmm.config import KmmConfig
from kmm.kalshi.rest import KalshiRest, MarketListing
from kmm.live import venue_rest
from kmm.select.discovery import Budget, Scored, discover
from kmm.select.reader import ReadStats, read_views
from kmm.types import ONE_DOLLAR, QTY_SCALE, Price, format_count, format_price

__all__ = ["MarketFilter", "format_scan", "run_markets", "run_scan"]

_NS_PER_S: Final = 1_000_000_000
_DAY_S: Final = 86_400


@dataclass(frozen=True, slots=True)
class MarketFilter:
    """What ``kmm markets`` keeps.

    Attributes:
        category: Only this category (case-insensitive), if set.
        series: Only this series, if set.
        closes_within_s: Only markets closing within this many seconds, if set.
        min_volume_24h: Least 24 h volume (0.01 contracts).
        limit: The most rows printed.
    """

    category: str | None = None
    series: str | None = None
    closes_within_s: float | None = None
    min_volume_24h: int = 0
    limit: int = 50


async def run_scan(config: KmmConfig, *, out: TextIO, show: int, refused: bool) -> int:
    """Scores every open market and prints the table (``show`` rows; ``refused``: also
    every refused market with its reason). Returns the exit status (0)."""
    params = discovery_params(config)
    async with venue_rest(config, out) as rest:
        now_ns = time.time_ns()
        views, _, stats = await read_views(
            rest,
            params,
            now_ns,
            recent_s=config.discovery.recent_s,
            depth_levels=config.discovery.depth_levels,
        )
        ranked, budget = discover(views, params, now_ns)
        limits = await rest.account_limits()
    print(_cost_line(stats, limits.read_capacity, limits.read_refill_per_s), file=out)
    print(format_scan(ranked, budget, now_ns, show=show, refused=refused), file=out)
    return 0


def _cost_line(stats: ReadStats, capacity: int, refill: int) -> str:
    return (
        f"kmm scan: {stats.markets} open markets, {stats.books} books, {stats.trades} recent "
        f"trades read in {stats.wall_s:.2f} s with {stats.requests} requests "
        f"({stats.tokens} read tokens; the read bucket holds {capacity} and refills {refill}/s)"
    )


def format_scan(
    ranked: Sequence[Scored],
    budget: dict[str, Budget],
    now_ns: int,
    *,
    show: int,
    refused: bool,
) -> str:
    """The scored table: the best ``show`` markets, then the refusals counted by reason (and
    listed one by one with ``refused``)."""
    scored = [s for s in ranked if s.score is not None]
    lines = [
        f"{len(scored)} candidates, {len(budget)} chosen "
        f"(top {len(budget)} by score, each with a position cap):",
        f"  {'rank':>4}  {'ticker':<28} {'category':<22} {'score':>6}  {'close in':>8} "
        f"{'spread':>6} {'depth':>7} {'vol 24h':>9} {'recent':>6} {'cap':>4}  reasons",
    ]
    for rank, s in enumerate(scored[:show], start=1):
        v = s.view
        cap = budget.get(s.ticker)
        lines.append(
            f"  {rank:>4}  {v.ticker:<28} {v.category[:22]:<22} {s.score or 0.0:>6.3f}  "
            f"{_close_in(v.close_ns, now_ns):>8} {_cents(v.spread):>6} "
            f"{v.depth // QTY_SCALE:>7} {v.volume_24h // QTY_SCALE:>9} {v.recent_trades:>6} "
            f"{'' if cap is None else cap.max_position // QTY_SCALE:>4}  "
            + "; ".join(s.reasons + (cap.reasons if cap else ()))
        )
    refusals = [s for s in ranked if s.score is None]
    if refusals:
        kinds = Counter(_kind(s.reasons[0]) for s in refusals)
        summary = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
        lines.append(f"{len(refusals)} refused: {summary}")
    if refused:
        lines.extend(f"  {s.ticker:<28} {s.reasons[0]}" for s in refusals)
    return "\n".join(lines)


def _kind(reason: str) -> str:
    """A refusal's kind: its words before the first figure (``closes in``, ``spread``)."""
    words = []
    for word in reason.split():
        if any(c.isdigit() for c in word):
            break
        words.append(word)
    return " ".join(words) or reason


async def run_markets(config: KmmConfig, chosen: MarketFilter, *, out: TextIO) -> int:
    """Lists the open markets ``chosen`` keeps. Returns the exit status (0)."""
    async with venue_rest(config, out) as rest:
        now_ns = time.time_ns()
        rows = await _market_rows(rest, chosen, now_ns)
    print(f"kmm markets: {len(rows)} open markets match", file=out)
    print(
        f"  {'ticker':<28} {'category':<22} {'type':<6} {'close in':>8} {'bid':>7} {'ask':>7} "
        f"{'vol 24h':>10} {'open int':>10}",
        file=out,
    )
    for listing, category in rows[: chosen.limit]:
        info = listing.info
        print(
            f"  {info.ticker:<28} {category[:22]:<22} {listing.market_type:<6} "
            f"{_close_in(info.close_ns, now_ns):>8} {_price(info.yes_bid):>7} "
            f"{_price(info.yes_ask):>7} {format_count(listing.volume_24h):>10} "
            f"{format_count(listing.open_interest):>10}",
            file=out,
        )
    if len(rows) > chosen.limit:
        print(f"  ... {len(rows) - chosen.limit} more (--limit)", file=out)
    return 0


async def _market_rows(
    rest: KalshiRest, chosen: MarketFilter, now_ns: int
) -> list[tuple[MarketListing, str]]:
    categories = await rest.series_categories()
    series_of = await rest.event_series_map()
    rows = []
    for listing in await rest.listings():
        info = listing.info
        series = series_of.get(info.event_ticker, "")
        category = categories.get(series, "")
        if chosen.category and category.lower() != chosen.category.lower():
            continue
        if chosen.series and series != chosen.series:
            continue
        if chosen.closes_within_s is not None and (
            info.close_ns is None or (info.close_ns - now_ns) / _NS_PER_S > chosen.closes_within_s
        ):
            continue
        if listing.volume_24h < chosen.min_volume_24h:
            continue
        rows.append((listing, category))
    rows.sort(key=lambda row: (-row[0].volume_24h, row[0].info.ticker))
    return rows


def _close_in(close_ns: int | None, now_ns: int) -> str:
    if close_ns is None:
        return "-"
    seconds = (close_ns - now_ns) // _NS_PER_S
    if seconds >= _DAY_S:
        return f"{seconds // _DAY_S}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{max(seconds, 0) // 60}m"


def _cents(spread: Price | None) -> str:
    return "-" if spread is None else f"{spread / 100:g}c"


def _price(price: Price | None) -> str:
    return "-" if price is None or price in (0, ONE_DOLLAR) else format_price(price)
