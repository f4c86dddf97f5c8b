"""Discovery's choice in the backtest: the exchange as it is at the start of a run, read in
process through the same parsers as the REST client, scored as ``kmm scan`` scores it.

The backtest has no REST API, so ``markets.mode: discovery`` and ``volatility`` choose their
markets here, once, at the start (``kmm run`` also rescores every ``discovery.rescore_s``; the
backtest does not).
"""

from __future__ import annotations

from dataclasses import replace

from kmm.app import discovery_params
from kmm.backtest.sim_venue import GeneratedVenue
from kmm.config import KmmConfig
from kmm.select.discovery import discover
from kmm.select.reader import book_free_views, needs_book, with_books
from kmm.types import Qty

__all__ = ["discovered"]


def discovered(
    config: KmmConfig, venue: GeneratedVenue, top_n: int, now_ns: int
) -> list[tuple[str, Qty]]:
    """Discovery's best ``top_n`` markets of ``venue`` now, best first, each with its budget
    (its position cap, 0.01 contracts)."""
    params = replace(discovery_params(config), top_n=top_n)
    listings = venue.listings()
    views = book_free_views(listings, venue.event_series_map(), venue.series_categories(), [])
    candidates = [v.ticker for v in views if needs_book(v, params, now_ns)]
    views = with_books(views, venue.orderbooks(candidates), config.discovery.depth_levels)
    ranked, budgets = discover(views, params, now_ns)
    return [(s.ticker, budgets[s.ticker].max_position) for s in ranked if s.selected]
